"""The queue table: one row per job, updated cell by cell from :class:`JobView` values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rich.text import Text
from textual.widgets import DataTable

from civitai_tui.tui.formatting import human_bytes, human_eta, human_speed, text_bar
from civitai_tui.tui.state import JobView
from civitai_tui.tui.widgets.state_style import state_text

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
NAME_WIDTH = 28
KIND_WIDTH = 12
#: Columns whose values arrive after the row does (an empty cell would size them to
#: the label, and later values would be cut): "999.9 MiB/s", "99:59:59", "100.0 GiB".
FIXED_WIDTHS = {"speed": 11, "eta": 8, "size": 10}


def job_cells(job: JobView) -> tuple[str, ...]:
    """The text of each column for ``job`` (what tests compare with the engine)."""
    speed = job.speed
    name = job.name if len(job.name) <= NAME_WIDTH else job.name[: NAME_WIDTH - 1] + "…"
    return (
        name,
        job.kind if len(job.kind) <= KIND_WIDTH else job.kind[: KIND_WIDTH - 1] + "…",
        job.state,
        str(job.priority),
        text_bar(job.done_bytes, job.total_bytes),
        human_bytes(job.total_bytes) if job.total_bytes else "?",
        human_speed(speed),
        human_eta(job.total_bytes - job.done_bytes, speed),
        f"{job.files_done}/{job.files_total}",
    )


class JobsTable(DataTable[str | Text]):
    """A row per job keyed by job id; only changed cells are written."""

    DEFAULT_CSS = """
    JobsTable { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._shown: dict[str, tuple[str, ...]] = {}
        self.variables: Mapping[str, str] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key, width=FIXED_WIDTHS.get(key))

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def cells_of(self, job_id: str) -> tuple[str, ...]:
        """The text now shown in ``job_id``'s row."""
        return self._shown[job_id]

    def _styled(self, cells: tuple[str, ...]) -> list[str | Text]:
        row: list[str | Text] = list(cells)
        row[2] = state_text(cells[2], self.variables)
        return row

    def rebuild(self, jobs: Sequence[JobView]) -> None:
        """Replace every row (rows came, went or moved), keeping the cursor on its job."""
        selected = self.selected_id
        self.clear()
        self._shown = {job.id: job_cells(job) for job in jobs}
        for job_id, cells in self._shown.items():
            self.add_row(*self._styled(cells), key=job_id)
        if selected in self._shown:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def update_jobs(self, jobs: Iterable[JobView]) -> None:
        """Write the changed cells of those ``jobs`` that have a row."""
        for job in jobs:
            if job.id not in self._shown:
                continue
            cells = job_cells(job)
            old = self._shown[job.id]
            for index, (value, before) in enumerate(zip(cells, old, strict=True)):
                if value != before:
                    shown: str | Text = value
                    if index == 2:
                        shown = state_text(value, self.variables)
                    self.update_cell(job.id, COLUMNS[index][0], shown)
            self._shown[job.id] = cells
