"""The command palette offers the screen's key bindings, only those allowed right now."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandPalette
from textual.screen import Screen
from textual.widgets import OptionList

from civitai_tui.simulator.server import Simulator
from civitai_tui.tui.commands import ScreenCommands, eval_params
from civitai_tui.tui.screens.jobs import JobsScreen
from tests.tui.conftest import SIZE, Live, until


def first_option(palette: Screen[object]) -> str:
    """The palette's top hit (it searches in a worker: poll this)."""
    options = palette.query_one(OptionList)
    if options.option_count == 0:
        raise LookupError("no hits yet")
    return str(options.get_option_at_index(0).prompt)


def test_action_parameters_are_read_as_literals() -> None:
    assert eval_params("") == []
    assert eval_params("'pause')") == ["pause"]
    assert eval_params("-1)") == [-1]


async def test_palette_lists_allowed_commands_and_runs_them(
    live: Live, sim: Simulator, tmp_path: Path
) -> None:
    large = sim.catalogue.specials.large
    # A total cap too: the optimizer opens connections until a per-connection cap
    # alone would let the 128 MiB file finish before the test has acted.
    sim.faults.set(large.file_id, per_connection_rate=300_000, total_rate=300_000)
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        provider = ScreenCommands(screen)
        idle = {hit.text async for hit in provider.discover()}
        assert {"jobs: Add", "jobs: Pause all", "jobs: Resume all"} <= idle
        assert "jobs: Pause" not in idle  # nothing selected: no job actions

        job = await live.client.add([f"model:{large.model_id}"], options={"dest": str(tmp_path)})
        await until(pilot, lambda: screen.table.cells_of(job["id"])["state"] == "PROCESSING")
        await until(pilot, lambda: screen.selected is not None)
        hits = {hit.text: hit async for hit in provider.search("pause")}
        assert "jobs: Pause" in hits and "jobs: Resume" not in hits
        await hits["jobs: Pause"].command()
        await until(pilot, lambda: screen.table.cells_of(job["id"])["state"] == "PAUSED")

        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"resume all")
        await until(pilot, lambda: "Resume all" in first_option(app.screen))
        await pilot.press("enter")
        await until(pilot, lambda: screen.table.cells_of(job["id"])["state"] != "PAUSED")
        assert (await live.client.action(job["id"], "cancel"))["state"] == "CANCELLED"
