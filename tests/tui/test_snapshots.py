"""Snapshot tests of each screen with fixed data (a scripted transport) and a fixed clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from textual.pilot import Pilot
from textual_image.widget import HalfcellImage

from civitai_tui.tui.app import CivitaiTuiApp, make_app
from civitai_tui.tui.screens.browse import BrowseScreen
from civitai_tui.tui.widgets.jobs_table import JobsTable, layout_for
from tests.tui.conftest import SIZE, until
from tests.tui.scripted import JOBS, T0, ScriptedEngine
from tests.tui.scripted_browse import ScriptedBrowse


def scripted_app(home: Path, theme: str = "civitai-dark") -> CivitaiTuiApp:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f"[ui]\ntheme = '{theme}'\n")
    return make_app(ScriptedEngine(), home, clock=lambda: T0)  # type: ignore[arg-type]


def columns_fit(table: JobsTable) -> bool:
    """The table has laid its columns out for its width, and every value fits."""
    if table.column_layout != layout_for(table.size.width):
        return False
    shown = [table.cells_of(str(row.value)) for row in table.rows]
    return bool(shown) and all(
        column.width >= max(cell_len(cells[str(column.key.value)]) for cells in shown)
        for column in table.ordered_columns
    )


async def loaded(pilot: Pilot[Any]) -> None:
    app = pilot.app
    await until(
        pilot, lambda: len(app.state.jobs) == len(JOBS) and len(app.state.perf.samples) == 120
    )
    await until(pilot, lambda: not app.state.has_changes)  # the flush timer painted it all
    await until(pilot, lambda: columns_fit(app.screen.query_one(JobsTable)))
    await pilot.pause(0.3)


@pytest.mark.parametrize("theme", ["civitai-dark", "civitai-light", "civitai-amber"])
def test_jobs_screen(snap_compare: Any, isolated_home: Path, theme: str) -> None:
    assert snap_compare(scripted_app(isolated_home, theme), run_before=loaded, terminal_size=SIZE)


def test_jobs_screen_at_80x24(snap_compare: Any, isolated_home: Path) -> None:
    assert snap_compare(scripted_app(isolated_home), run_before=loaded, terminal_size=(80, 24))


def test_job_detail(snap_compare: Any, isolated_home: Path) -> None:
    async def details(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("d")
        await pilot.pause(0.3)

    assert snap_compare(scripted_app(isolated_home), run_before=details, terminal_size=SIZE)


def test_add_dialog(snap_compare: Any, isolated_home: Path) -> None:
    async def dialog(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("a", *"user:someone")
        await pilot.pause(0.2)

    assert snap_compare(scripted_app(isolated_home), run_before=dialog, terminal_size=SIZE)


def test_performance_screen(snap_compare: Any, isolated_home: Path) -> None:
    async def perf(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("2")
        await pilot.pause(0.5)

    assert snap_compare(scripted_app(isolated_home), run_before=perf, terminal_size=SIZE)


def test_performance_screen_at_80x24_shows_one_tall_graph(
    snap_compare: Any, isolated_home: Path
) -> None:
    async def perf(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("2")
        await pilot.pause(0.5)

    assert snap_compare(scripted_app(isolated_home), run_before=perf, terminal_size=(80, 24))


async def test_analytics_screen(isolated_home: Path) -> None:
    """Checked as text: its plotext charts are not yet pixel-stable between runs (see report)."""
    app = scripted_app(isolated_home)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        await until(pilot, lambda: app.screen.report is not None)
        cards = [str(app.screen.query_one(f"#card-{i}").render()) for i in range(5)]
        assert cards[0] == "Downloads\n131 ok / 6 failed" and cards[1] == "Success rate\n95.6%"
        assert cards[2] == "Bytes\n412.0 GiB" and cards[4].endswith("83.9 MiB/s")
        trends = app.screen.query_one("#trends")
        assert [str(c) for c in trends.get_row_at(0)] == ["mean speed", "↑ +30.0%", "high"]
        patterns = str(app.screen.query_one("#patterns").render())
        assert "Most downloads finish 19:00-23:00" in patterns
        assert patterns.count("queue large checkpoints overnight") == 1  # advice given once
        assert "Lower concurrency" in patterns and "its speeds need at least one" in patterns


def browse_app(home: Path) -> CivitaiTuiApp:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[ui]\ntheme = 'civitai-dark'\n")
    return make_app(ScriptedBrowse(), home, clock=lambda: T0, follow_engine=False)  # type: ignore[arg-type]


async def browse_loaded(pilot: Pilot[Any]) -> BrowseScreen:
    await pilot.press("4")
    screen = pilot.app.screen
    assert isinstance(screen, BrowseScreen)
    await until(pilot, lambda: screen.results.row_count >= 20 and not screen.loading_more)
    await pilot.pause(0.3)
    return screen


def test_browse_list_at_80x24(snap_compare: Any, isolated_home: Path) -> None:
    async def run(pilot: Pilot[Any]) -> None:
        screen = await browse_loaded(pilot)
        screen.results.move_cursor(row=3)  # the hostile name, shown as typed
        await pilot.pause(0.3)

    assert snap_compare(browse_app(isolated_home), run_before=run, terminal_size=(80, 24))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_browse_detail_with_a_half_block_preview(
    snap_compare: Any, isolated_home: Path, size: tuple[int, int]
) -> None:
    async def run(pilot: Pilot[Any]) -> None:
        screen = await browse_loaded(pilot)
        await pilot.press("down", "enter")
        await until(pilot, lambda: screen.pane.preview.shown is not None)
        await until(pilot, lambda: bool(screen.pane.preview.query(HalfcellImage)))
        await pilot.pause(0.3)

    assert snap_compare(browse_app(isolated_home), run_before=run, terminal_size=size)
