"""Browse's result list: a row per model, pages appended as they arrive, columns fit the width."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import DataTable

from civitai_tui.browse.records import ModelSummary
from civitai_tui.security.display import printable, rich_text

COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Name"),
    ("creator", "Creator"),
    ("type", "Type"),
    ("base", "Base"),
    ("downloads", "DLs"),
    ("rating", "Rate"),
    ("date", "Updated"),
)
LABELS = dict(COLUMNS)
#: Set widths: a column sized from its cells would grow only once the table is idle.
WIDTHS = {"creator": 10, "type": 10, "base": 9, "downloads": 5, "rating": 4, "date": 10}
CELL_PADDING = 2  # DataTable's cell_padding, both sides
SCROLLBAR_WIDTH = 2
MIN_NAME_WIDTH = 14
MAX_NAME_WIDTH = 48
#: The columns given up first when the list is narrow (the detail pane repeats them).
DROP_ORDER = ("rating", "creator", "base", "date")


@dataclass(frozen=True)
class ResultLayout:
    """The shown columns and the name column's width."""

    keys: tuple[str, ...]
    name_width: int = MIN_NAME_WIDTH

    def fixed_width(self) -> int:
        return sum(WIDTHS.get(k, 0) + CELL_PADDING for k in self.keys)


def layout_for(width: int) -> ResultLayout:
    """The most columns that leave the name at least ``MIN_NAME_WIDTH`` cells in ``width``."""
    room = width - SCROLLBAR_WIDTH
    keys = tuple(LABELS)
    for dropped in range(len(DROP_ORDER) + 1):
        keys = tuple(k for k in LABELS if k not in DROP_ORDER[:dropped])
        name = room - ResultLayout(keys).fixed_width()
        if name >= MIN_NAME_WIDTH:
            return ResultLayout(keys, min(MAX_NAME_WIDTH, name))
    return ResultLayout(keys, MIN_NAME_WIDTH)


def compact_count(n: int) -> str:
    """``1234`` -> ``"1.2k"``, ``3400000`` -> ``"3.4M"``: five cells at most."""
    for limit, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= limit:
            value = n / limit
            return f"{value:.1f}{unit}" if value < 99.95 else f"{value:.0f}{unit}"
    return str(n)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def result_cells(model: ModelSummary, layout: ResultLayout) -> tuple[str, ...]:
    """The text of each shown column for ``model`` (plain: tests compare it)."""
    date = model.newest_version_date
    values = {
        "name": _clip(printable(model.name), layout.name_width),
        "creator": _clip(printable(model.creator), WIDTHS["creator"]),
        "type": _clip(printable(model.type), WIDTHS["type"]),
        "base": _clip(printable(model.base_model), WIDTHS["base"]),
        "downloads": compact_count(model.downloads),
        "rating": "" if model.rating is None else f"{model.rating:.1f}",
        "date": date.strftime("%Y-%m-%d") if date else "",
    }
    return tuple(values[key] for key in layout.keys)


class BrowseResults(DataTable[Text]):
    """A row per model keyed by its id; a model a later page repeats is not added twice."""

    DEFAULT_CSS = """
    BrowseResults { height: 1fr; }
    """
    #: A list, not a sheet: home and end go to the first and last row (more pages follow).
    BINDINGS = [
        Binding(
            "enter",
            "select_cursor",
            "Details",
            id="results.details",
            tooltip="Versions, files, scans, licence and description of the model.",
        ),
        Binding("home", "scroll_top", "First", id="results.first", show=False),
        Binding("end", "scroll_bottom", "Last", id="results.last", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.models: dict[int, ModelSummary] = {}
        self.column_layout = layout_for(80)

    def on_mount(self) -> None:
        self._add_columns()

    def on_resize(self, event: events.Resize) -> None:
        layout = layout_for(event.size.width)
        if layout != self.column_layout:
            self.column_layout = layout
            selected = self.selected
            models = list(self.models.values())
            self.clear(columns=True)
            self.models = {}
            self._add_columns()
            self.append(models)
            if selected is not None:
                self.move_cursor(row=self.get_row_index(str(selected.id)), animate=False)

    def _add_columns(self) -> None:
        for key in self.column_layout.keys:
            width = self.column_layout.name_width if key == "name" else WIDTHS[key]
            self.add_column(LABELS[key], key=key, width=width)

    def replace_all(self, models: Iterable[ModelSummary]) -> None:
        """Show only ``models`` (a new search), the cursor on the first."""
        self.clear()
        self.models = {}
        self.append(models)

    def append(self, models: Iterable[ModelSummary]) -> int:
        """Add the models not shown yet, below the others; returns how many were new."""
        added = 0
        for model in models:
            if model.id in self.models:
                continue
            self.models[model.id] = model
            cells = result_cells(model, self.column_layout)
            self.add_row(*(rich_text(c) for c in cells), key=str(model.id))
            added += 1
        return added

    def cells_of(self, model_id: int) -> dict[str, str]:
        """The text shown in ``model_id``'s row, by column key."""
        cells = result_cells(self.models[model_id], self.column_layout)
        return dict(zip(self.column_layout.keys, cells, strict=True))

    @property
    def selected(self) -> ModelSummary | None:
        """The model under the cursor."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self.models.get(int(key)) if key is not None else None

    def rows_below_cursor(self) -> int:
        return self.row_count - 1 - self.cursor_row
