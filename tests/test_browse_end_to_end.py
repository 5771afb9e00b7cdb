"""The library view end to end: the real screen and engine, files from the simulator's gallery.

(Search, detail, preview and queueing through the add preview are in tests/tui/test_browse_live.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from civitai_tui.simulator.server import start_simulator
from civitai_tui.tui.app import make_app
from civitai_tui.tui.screens.browse import BrowseScreen
from tests.helpers import TOKEN, embedded_engine
from tests.tui.conftest import until

# A real engine, simulator and screen in one process: give a loaded machine time.
pytestmark = pytest.mark.timeout(300)


async def test_the_library_view_badges_an_update_and_u_queues_it_beside(tmp_path: Path) -> None:
    sim = await start_simulator(tokens={TOKEN}, gallery=40)
    lib = tmp_path / "lib"
    model = next(
        m
        for m in sim.catalogue.models[-40:]
        if len(m.versions) >= 2 and m.versions[1].files[0].name.endswith(".safetensors")
    )
    old = model.versions[1].files[0]
    lib.mkdir()
    (lib / old.name).write_bytes(old.read(0, old.size))
    config = f'[bulk]\ndest = "{lib}"\n'
    try:
        async with embedded_engine(sim, tmp_path / "state", config) as (engine, client, _):
            app = make_app(client, tmp_path / "state", follow_engine=False)
            async with app.run_test(size=(120, 40)) as pilot:
                await pilot.press("4")
                screen = app.screen
                assert isinstance(screen, BrowseScreen)
                await pilot.press("L")
                await until(pilot, lambda: screen.library.row_count == 1, timeout=60)
                entry = screen.library.selected
                assert entry is not None and entry.has_update
                assert entry.newest_version_id == model.versions[0].id
                await pilot.press("u")
                await until(pilot, lambda: len(engine.manager.jobs()) == 1, timeout=60)
            (job,) = await client.jobs()
            assert (await client.wait([job["id"]], timeout=60))["ok"]
        assert sorted(p.name for p in lib.glob("*.safetensors")) == sorted(
            [old.name, model.versions[0].files[0].name]
        )
    finally:
        await sim.close()
