"""The queue table: one row per job, updated cell by cell from :class:`JobView` values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from civitai_tui.security.display import printable, rich_text
from civitai_tui.tui.formatting import BAR_WIDTH, human_eta, text_bar
from civitai_tui.tui.state import JobView
from civitai_tui.tui.widgets.state_style import state_text
from civitai_tui.units import human_bytes, human_speed

COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Name"),
    ("type", "Type"),
    ("state", "State"),
    ("priority", "Pri"),
    ("progress", "Progress"),
    ("size", "Size"),
    ("speed", "Speed"),
    ("eta", "ETA"),
    ("files", "Files"),
)
LABELS = dict(COLUMNS)
#: Marks the label of the column the rows are sorted by.
SORT_MARK = "▾"
NAME_WIDTH = 28
#: A name narrower than this makes the table drop a column (or shorten the bar) first.
GOOD_NAME_WIDTH = 20
MIN_NAME_WIDTH = 12
KIND_WIDTH = 12
COMPACT_BAR_WIDTH = 5
#: Every column has a set width (the name's comes from the layout): a column sized
#: from its cells would start at the label's width and grow only when the table is
#: next idle, and values that arrive later ("999.9 MiB/s") would be cut.
WIDTHS = {
    "type": KIND_WIDTH,
    "state": 10,  # "PROCESSING"
    "priority": 4,  # "Pri▾"
    "size": 10,  # "100.0 GiB"
    "speed": 11,  # "999.9 MiB/s"
    "eta": 8,  # "99:59:59"
    "files": 9,  # "9999/9999"
}
CELL_PADDING = 2  # DataTable's cell_padding, both sides
#: Room kept for the vertical scrollbar, so that its coming does not re-layout.
SCROLLBAR_WIDTH = 2


@dataclass(frozen=True)
class ColumnLayout:
    """Which columns the table shows, and how wide the name and the bar are."""

    keys: tuple[str, ...]
    name_width: int = NAME_WIDTH
    bar_width: int = BAR_WIDTH

    def column_width(self, key: str) -> int:
        """The width of column ``key``'s text."""
        if key == "name":
            return self.name_width
        if key == "progress":
            return self.bar_width + 5  # " 100%"
        return WIDTHS[key]

    def width(self) -> int:
        """The columns' total width, but for the name's text."""
        return sum(self.column_width(key) + CELL_PADDING for key in self.keys) - self.name_width


def _without(*dropped: str, bar_width: int = BAR_WIDTH) -> ColumnLayout:
    return ColumnLayout(tuple(k for k in LABELS if k not in dropped), bar_width=bar_width)


FULL = ColumnLayout(tuple(LABELS))
#: From the widest to the narrowest: Type goes first, then Size (both are in the
#: detail panel), then the bar shortens, then Pri goes; below that the name narrows.
NARROWER = (
    FULL,
    _without("type"),
    _without("type", "size"),
    _without("type", "size", bar_width=COMPACT_BAR_WIDTH),
    _without("type", "size", "priority", bar_width=COMPACT_BAR_WIDTH),
)


def layout_for(width: int) -> ColumnLayout:
    """The widest layout whose name column gets at least ``GOOD_NAME_WIDTH`` in ``width``."""
    room = width - SCROLLBAR_WIDTH
    for layout in NARROWER:
        name = room - layout.width()
        if name >= GOOD_NAME_WIDTH:
            return replace(layout, name_width=min(NAME_WIDTH, name))
    return replace(NARROWER[-1], name_width=max(MIN_NAME_WIDTH, name))


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def job_cells(job: JobView, layout: ColumnLayout = FULL) -> tuple[str, ...]:
    """The text of each of ``layout``'s columns for ``job`` (what tests compare with the engine)."""
    speed = job.speed
    values = {
        "name": _clip(printable(job.name), layout.name_width),
        "type": _clip(printable(job.kind), KIND_WIDTH),
        "state": job.state,
        "priority": str(job.priority),
        "progress": text_bar(job.done_bytes, job.total_bytes, layout.bar_width),
        "size": human_bytes(job.total_bytes) if job.total_bytes else "?",
        "speed": human_speed(speed),
        "eta": human_eta(job.total_bytes - job.done_bytes, speed),
        "files": f"{job.files_done}/{job.files_total}",
    }
    return tuple(values[key] for key in layout.keys)


class JobsTable(DataTable[str | Text]):
    """A row per job keyed by job id; only changed cells are written.

    The columns follow the table's width (:func:`layout_for`): at 80 columns Type,
    Size and Pri give way, so that Speed, ETA and Files stay in view without
    horizontal scrolling.
    """

    DEFAULT_CSS = """
    JobsTable { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._jobs: dict[str, JobView] = {}  # the views, for a new layout
        self._shown: dict[str, tuple[str, ...]] = {}  # the cells painted, in layout order
        self.column_layout = FULL
        self.sort_column = ""  # the column key the rows are sorted by ("": queue order)
        self.variables: Mapping[str, str] = {}

    def on_mount(self) -> None:
        self._add_columns()

    def on_resize(self, event: events.Resize) -> None:
        layout = layout_for(event.size.width)
        if layout != self.column_layout:
            self.column_layout = layout
            self._relabel()

    def sort_by(self, key: str) -> None:
        """Mark column ``key`` (a ``SORTS`` name) as the sorted one; "queue" marks none."""
        column = key if key in LABELS else ""
        if column != self.sort_column:
            self.sort_column = column
            self._relabel()

    def _relabel(self) -> None:
        selected = self.selected_id
        self.clear(columns=True)
        self._add_columns()
        self._fill(list(self._jobs.values()), selected)

    def _add_columns(self) -> None:
        for key in self.column_layout.keys:
            label = LABELS[key] + (SORT_MARK if key == self.sort_column else "")
            self.add_column(label, key=key, width=self.column_layout.column_width(key))

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def cells_of(self, job_id: str) -> dict[str, str]:
        """The text painted in ``job_id``'s row, by column key (shown columns only)."""
        return dict(zip(self.column_layout.keys, self._shown[job_id], strict=True))

    def _styled(self, cells: tuple[str, ...]) -> list[str | Text]:
        return [
            self._paint(key, cell) for key, cell in zip(self.column_layout.keys, cells, strict=True)
        ]

    def _paint(self, key: str, cell: str) -> str | Text:
        """A cell as DataTable takes it: the state coloured, the rest never parsed as markup."""
        return state_text(cell, self.variables) if key == "state" else rich_text(cell)

    def rebuild(self, jobs: Sequence[JobView]) -> None:
        """Replace every row (rows came, went or moved), keeping the cursor on its job."""
        selected = self.selected_id
        self.clear()
        self._fill(jobs, selected)

    def _fill(self, jobs: Sequence[JobView], selected: str | None) -> None:
        self._jobs = {job.id: job for job in jobs}
        self._shown = {job.id: job_cells(job, self.column_layout) for job in jobs}
        for job_id, cells in self._shown.items():
            self.add_row(*self._styled(cells), key=job_id)
        if selected in self._shown:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def update_jobs(self, jobs: Iterable[JobView]) -> None:
        """Write the changed cells of those ``jobs`` that have a row."""
        for job in jobs:
            if job.id not in self._shown:
                continue
            self._jobs[job.id] = job
            cells = job_cells(job, self.column_layout)
            old = self._shown[job.id]
            for key, value, before in zip(self.column_layout.keys, cells, old, strict=True):
                if value != before:
                    self.update_cell(job.id, key, self._paint(key, value))
            self._shown[job.id] = cells
