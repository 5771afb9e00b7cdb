"""Browse against the real engine and the simulator's catalogue: search, detail, preview, queue."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input
from textual_image.widget import HalfcellImage

from civitai_tui.tui.screens.add_job import AddJobScreen
from civitai_tui.tui.screens.browse import BrowseScreen
from tests.tui.conftest import Live, until

SIZE = (120, 40)


async def test_browse_the_simulator_look_at_a_model_and_queue_it(
    live: Live, tmp_path: Path
) -> None:
    dest = tmp_path / "models"  # the add dialog's default is the current folder: never that
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, BrowseScreen)
        await until(pilot, lambda: screen.results.row_count >= 20, timeout=30)
        await pilot.press(*"ttttt")  # LORA only (small files)
        await until(
            pilot,
            lambda: (
                screen.results.row_count > 0
                and all(m.type == "LORA" for m in screen.results.models.values())
            ),
            timeout=30,
        )
        model = screen.results.selected
        assert model is not None
        await pilot.press("enter")
        await until(pilot, lambda: screen.detail is not None, timeout=30)
        assert screen.detail is not None and screen.detail.summary.id == model.id
        versions = [v.published_at for v in screen.detail.versions if v.published_at]
        assert versions == sorted(versions, reverse=True)  # newest first
        if screen.pane.preview._wanted is not None:  # a picture within the NSFW level
            await until(pilot, lambda: bool(screen.pane.preview.query(HalfcellImage)), 30)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AddJobScreen))
        await until(pilot, lambda: "free" in str(app.screen.query_one("#add-preview").render()))
        app.screen.query_one("#dest", Input).value = str(dest)
        await pilot.press("f5")
        await until(pilot, lambda: str(dest) in str(app.screen.query_one("#add-preview").render()))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen, timeout=30)
        jobs = await live.client.jobs()
        assert any(str(screen.detail.versions[0].id) in " ".join(j["targets"]) for j in jobs)
        await until(pilot, lambda: any(dest.glob("*.safetensors")), timeout=30)
        await pilot.press("L")
        await until(pilot, lambda: screen.sub_title.startswith("library:"), timeout=30)
