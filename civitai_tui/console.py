"""Rich output for the command line: live progress bars fed by the event bus, and summaries.

:class:`ProgressDisplay` is a bus callback: it turns ``FileStarted`` /
``FileProgress`` / ``FileCompleted`` / ``FileFailed`` into one bar per file plus
an overall bar (speed and ETA), on stderr so ``--json`` keeps stdout clean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.box import HEAVY_HEAD
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from civitai_tui.browse.records import LibraryEntry
from civitai_tui.events import Event, FileCompleted, FileFailed, FileProgress, FileStarted
from civitai_tui.security.display import printable, rich_text
from civitai_tui.units import human_bytes, human_speed

#: The width of piped output: long enough that nothing wraps.
UNWRAPPED = 100_000


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


class BinarySpeedColumn(ProgressColumn):
    """The transfer rate in MiB/s, like every other figure (rich's own is decimal)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(human_speed(speed) if speed else "?", style="progress.data.speed")


class ProgressDisplay:
    """Per-file and overall progress bars, updated from bus events."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.fields[mark]}"),  # ours: markup
            TextColumn("{task.description}", markup=False),  # the file name: never markup
            BarColumn(bar_width=None),
            DownloadColumn(binary_units=True),
            BinarySpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            refresh_per_second=4,
        )
        self._overall = self.progress.add_task("", total=0, mark="[bold]all files")
        self._tasks: dict[str, TaskID] = {}
        self._done: dict[str, int] = {}

    def start(self, total_files: int) -> None:
        """Show the bars, now that the number of files is known."""
        self.progress.update(self._overall, mark=f"[bold]all {total_files} file(s)")
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        """Bus callback."""
        if isinstance(event, FileStarted):
            self._start(event)
        elif isinstance(event, FileProgress):
            self._advance(event.key, event.done, event.total)
        elif isinstance(event, FileCompleted):
            self._finish(event.file.key, "[green]✓", event.bytes)
        elif isinstance(event, FileFailed):
            self._finish(event.file.key, "[red]✗", None)

    def _start(self, event: FileStarted) -> None:
        info = event.file
        if info.key in self._tasks:
            return
        self._tasks[info.key] = self.progress.add_task(
            printable(_short(info.name)), total=info.size, completed=event.resumed_bytes, mark=""
        )
        self._done[info.key] = event.resumed_bytes
        overall = self.progress.tasks[self._overall]
        self.progress.update(
            self._overall,
            total=(overall.total or 0) + (info.size or 0),
            advance=event.resumed_bytes,
        )

    def _advance(self, key: str, done: int, total: int | None) -> None:
        task = self._tasks.get(key)
        if task is None:
            return
        delta = done - self._done.get(key, 0)
        self._done[key] = done
        self.progress.update(task, completed=done, total=total)
        self.progress.update(self._overall, advance=delta)

    def _finish(self, key: str, mark: str, size: int | None) -> None:
        task = self._tasks.get(key)
        if task is None:
            return
        if size is not None:
            self._advance(key, size, size)
        self.progress.update(task, mark=mark)


class QueueProgress:
    """One bar over some jobs (``wait`` on a terminal), fed with their summaries."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=None),
            DownloadColumn(binary_units=True),
            BinarySpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            refresh_per_second=4,
        )
        self._task = self.progress.add_task("waiting", total=None)

    def __enter__(self) -> QueueProgress:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def update(self, jobs: Sequence[dict[str, Any]]) -> None:
        """Show how many of ``jobs`` are finished and their bytes done."""
        finished = sum(1 for j in jobs if j["state"] in ("COMPLETED", "FAILED", "CANCELLED"))
        failed = sum(j["files_failed"] for j in jobs)
        files = f"{sum(j['files_done'] for j in jobs)}/{sum(j['files_total'] for j in jobs)}"
        words = f"{finished}/{len(jobs)} jobs finished, {files} files"
        self.progress.update(
            self._task,
            description=words + (f", [red]{failed} failed[/]" if failed else ""),
            total=sum(j["total_bytes"] or 0 for j in jobs) or None,
            completed=sum(j["done_bytes"] or 0 for j in jobs),
        )


@dataclass(frozen=True)
class SummaryRow:
    """One line of the final summary."""

    name: str
    status: str
    bytes: int
    detail: str


def print_summary(console: Console, rows: Sequence[SummaryRow]) -> None:
    """A table of every file and what happened to it."""
    table = Table(title="Summary", show_lines=False, expand=False)
    table.add_column("file", overflow="fold")
    table.add_column("status")
    table.add_column("size", justify="right")
    table.add_column("detail", overflow="fold")
    styles = {"completed": "green", "skipped": "cyan", "failed": "red"}
    for row in rows:
        style = styles.get(row.status, "")
        table.add_row(
            rich_text(row.name),
            f"[{style}]{row.status}",
            human_bytes(row.bytes),
            rich_text(row.detail),
        )
    console.print(table)


def print_jobs(console: Console, jobs: Sequence[dict[str, Any]]) -> None:
    """The queue as a table (the control API's job summaries)."""
    if not jobs:
        console.print("no jobs")
        return
    table = Table(show_lines=False, expand=False, box=HEAVY_HEAD)
    if not console.is_terminal:  # piped: plain columns, one job a line, never wrapped
        table.box = None
        console = Console(file=console.file, width=UNWRAPPED, color_system=None)
    for name, justify in (
        ("id", "left"),
        ("state", "left"),
        ("prio", "right"),
        ("progress", "right"),
        ("files", "right"),
        ("size", "right"),
        ("name", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    waiting = any(job.get("waiting") for job in jobs)
    if waiting:  # why queued jobs do not move (the engine's words)
        table.add_column("waiting", overflow="fold")
    for job in jobs:
        total = job["total_bytes"] or 0
        pct = f"{100 * job['done_bytes'] / total:.0f}%" if total else "-"
        table.add_row(
            job["id"],
            job["state"],
            str(job["priority"]),
            pct,
            f"{job['files_done']}/{job['files_total']}",
            human_bytes(total),
            rich_text(job["name"]),
            *([rich_text(job.get("waiting") or "")] if waiting else []),
        )
    console.print(table)


def print_library(console: Console, entries: Sequence[LibraryEntry]) -> None:
    """The library check as a table: each model file, its model and version, and updates."""
    if not entries:
        console.print("no model files found")
        return
    table = Table(show_lines=False, expand=False, box=HEAVY_HEAD)
    if not console.is_terminal:
        table.box = None
        console = Console(file=console.file, width=UNWRAPPED, color_system=None)
    for name in ("file", "model", "version", "newest", "status"):
        table.add_column(name, overflow="fold")
    for e in entries:
        status = "update" if e.has_update else ("current" if e.known else "not on CivitAI")
        table.add_row(
            rich_text(e.path),
            rich_text(e.model_name or "-"),
            rich_text(e.version_name or "-"),
            rich_text(e.newest_version_name or "-"),
            Text(status, style="bold" if e.has_update else ""),
        )
    console.print(table)
    updates = sum(e.has_update for e in entries)
    console.print(f"{len(entries)} files, {updates} with a newer version on CivitAI")
