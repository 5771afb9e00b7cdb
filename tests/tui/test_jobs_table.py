"""The Jobs table's columns follow the terminal's width: all of them fit at 80 columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from civitai_tui.tui.widgets.jobs_table import (
    FULL,
    MIN_NAME_WIDTH,
    NAME_WIDTH,
    JobsTable,
    job_cells,
    layout_for,
)
from tests.tui.conftest import until
from tests.tui.test_snapshots import loaded, scripted_app


@pytest.mark.parametrize("width", [40, 60, 80, 100, 110, 118, 120, 122, 200])
def test_layout_fits_the_width_it_was_made_for(width: int) -> None:
    layout = layout_for(width)
    assert {"name", "state", "progress", "speed", "eta", "files"} <= set(layout.keys)
    assert MIN_NAME_WIDTH <= layout.name_width <= NAME_WIDTH
    if layout.name_width > MIN_NAME_WIDTH:  # only the narrowest layout may overflow
        assert layout.width() + layout.name_width <= width - 2  # room for the scrollbar
    if width >= FULL.width() + NAME_WIDTH + 2:
        assert layout == FULL


def test_narrower_layouts_drop_type_then_size() -> None:
    keys = [layout_for(w).keys for w in (140, 110, 90)]
    assert "type" in keys[0] and "size" in keys[0]
    assert "type" not in keys[1] and "size" in keys[1]
    assert "type" not in keys[2] and "size" not in keys[2]


async def test_table_relayouts_on_resize_without_losing_rows_or_cursor(
    isolated_home: Path,
) -> None:
    app = scripted_app(isolated_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(JobsTable)
        assert "type" not in table.column_layout.keys
        assert table.virtual_size.width <= table.size.width  # no horizontal scrolling
        await pilot.press("down")
        selected = table.selected_id
        assert selected is not None
        rows = table.row_count

        await pilot.resize_terminal(160, 40)
        await until(pilot, lambda: table.column_layout == FULL)
        assert table.row_count == rows and table.selected_id == selected
        assert [str(c) for c in table.get_row(selected)] == list(table.cells_of(selected).values())
        assert table.cells_of(selected) == dict(
            zip(FULL.keys, job_cells(app.state.jobs[selected]), strict=True)
        )

        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: table.column_layout == layout_for(table.size.width))
        assert table.selected_id == selected
        view = app.state.jobs[selected]
        drawn = [str(c) for c in table.get_row(selected)]
        assert drawn == list(job_cells(view, table.column_layout))
