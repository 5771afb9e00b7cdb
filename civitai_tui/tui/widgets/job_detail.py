"""The detail pane: the selected job's header and a row per file."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from civitai_tui.security.display import markup_safe, printable, rich_text
from civitai_tui.tui.formatting import text_bar
from civitai_tui.tui.state import FileView, JobView
from civitai_tui.tui.widgets.state_style import state_text
from civitai_tui.units import human_bytes, human_speed

FILE_COLUMNS = (
    "File",
    "State",
    "Progress",
    "Speed",
    "Conn",
    "Tries",
    "Verify",
    "Scan",
    "Where, or why not",
)


def file_cells(f: FileView) -> tuple[str, ...]:
    return (
        printable(f.name),
        f.state,
        text_bar(f.done, f.size),
        human_speed(f.speed),
        str(f.connections) if f.connections else "",
        str(f.attempts) if f.attempts else "",
        f.verification,
        printable(f.scan),
        printable(f.error or f.where),
    )


def job_header(job: JobView, reason: str = "") -> str:
    """Name, id, state and priority; targets; counts; why it waits; the last error."""
    lines = [
        f"[b]{markup_safe(job.name)}[/b]  id {job.id}  {job.state}  priority {job.priority}",
        f"targets: {markup_safe(' '.join(job.targets))}",
        f"{job.files_done}/{job.files_total} files, {job.files_failed} failed, "
        f"{human_bytes(job.done_bytes)} of {human_bytes(job.total_bytes)}",
    ]
    if reason:
        lines.append(markup_safe(reason))
    if job.error:
        lines.append(f"[$error]last error: {markup_safe(job.error)}[/]")
    return "\n".join(lines)


class JobDetail(Vertical):
    """Shows one job; ``show(None)`` clears it."""

    DEFAULT_CSS = """
    JobDetail { height: 14; border-top: solid $primary; }
    JobDetail > #detail-header { height: auto; padding: 0 1; }
    JobDetail > DataTable { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static("no job selected", id="detail-header", markup=True)
        table: DataTable[str | Text] = DataTable(id="detail-files", cursor_type="row")
        table.add_columns(*FILE_COLUMNS)
        yield table

    def show(self, job: JobView | None, variables: Mapping[str, str], reason: str = "") -> None:
        header = self.query_one("#detail-header", Static)
        table = self.query_one("#detail-files", DataTable)
        table.clear()
        if job is None:
            header.update("no job selected")
            return
        header.update(job_header(job, reason))
        for f in job.files.values():
            cells: list[str | Text] = [rich_text(c) for c in file_cells(f)]  # never markup
            cells[1] = state_text(f.state, variables)
            table.add_row(*cells, key=f.key)
