"""``get --dry-run``: the plan before a big download, for people and for scripts.

Every file the targets name, with its model, version, size and final path (by
the library rules), whether it is already there (a file of the same size at
that path), and what the destination's disk keeps free once the rest is in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from civitai_tui.civitai.planner import PlanFailure
from civitai_tui.download.disk import free_bytes
from civitai_tui.download.request import DownloadRequest
from civitai_tui.security.display import printable, rich_text
from civitai_tui.units import human_bytes


@dataclass(frozen=True)
class PlannedFile:
    name: str
    model: str
    version: str
    model_id: int | None
    version_id: int | None
    file_id: int | None
    size: int | None
    #: The final path; None when the name comes from the server (a plain URL).
    path: str | None
    present: bool


@dataclass(frozen=True)
class Plan:
    dest: str
    files: list[PlannedFile]
    failures: list[dict[str, str]]
    download_bytes: int
    present_bytes: int
    #: Free bytes on the destination's disk now, and once the new files are in.
    free_bytes: int | None
    free_after: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _present(path: Path | None, size: int | None) -> bool:
    return path is not None and path.is_file() and (size is None or path.stat().st_size == size)


def build_plan(
    requests: Sequence[DownloadRequest], failures: Sequence[PlanFailure], dest: Path
) -> Plan:
    files = []
    for r in requests:
        path = r.dest_dir / r.filename if r.filename else None
        files.append(
            PlannedFile(
                name=r.filename or r.info.name,
                model=r.info.model_name,
                version=r.info.version_name,
                model_id=r.info.model_id,
                version_id=r.info.version_id,
                file_id=r.info.file_id,
                size=r.expected_size or r.info.size,
                path=str(path) if path else None,
                present=_present(path, r.expected_size or r.info.size),
            )
        )
    new = sum(f.size or 0 for f in files if not f.present)
    free = free_bytes(dest)
    return Plan(
        dest=str(dest),
        files=files,
        failures=[{"target": f.target, "error": f.error.message} for f in failures],
        download_bytes=new,
        present_bytes=sum(f.size or 0 for f in files if f.present),
        free_bytes=free,
        free_after=None if free is None else free - new,
    )


def print_plan(console: Console, plan: Plan) -> None:
    """The plan as a table and a totals line."""
    table = Table(title="Plan (nothing downloaded)", expand=False)
    for name in ("file", "model / version", "size", "destination", "status"):
        table.add_column(name, overflow="fold", justify="right" if name == "size" else "left")
    for f in plan.files:
        table.add_row(
            rich_text(f.name),
            rich_text(f"{f.model} / {f.version}" if f.model else "-"),
            human_bytes(f.size) if f.size else "?",
            rich_text(f.path or "(name from the server)"),
            "present" if f.present else "new",
        )
    console.print(table)
    for failure in plan.failures:
        console.print(f"cannot plan {printable(failure['target'])}: {printable(failure['error'])}")
    new = sum(1 for f in plan.files if not f.present)
    free = (
        f"; free space after: {human_bytes(plan.free_after)} (now {human_bytes(plan.free_bytes)})"
        if plan.free_after is not None and plan.free_bytes is not None
        else ""
    )
    warn = " — NOT ENOUGH SPACE" if plan.free_after is not None and plan.free_after < 0 else ""
    console.print(
        f"{len(plan.files)} file(s): {new} to download ({human_bytes(plan.download_bytes)}), "
        f"{len(plan.files) - new} already present{free}{warn}",
        markup=False,
    )
