"""Why a queued job or file is not moving, in words a user can act on.

Worked out from the scheduler's state whenever a client asks (``ls``, job
details, the Jobs screen), never stored: a job still finding its files, a job
behind one that is, every batch slot busy or in its pause between batches, a
file whose path another job is writing, a file waiting for a connection to a
host whose connection budget is in use. Without an API token a waiting job
says that CivitAI files needing one will fail (the engine does not hold them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from civitai_tui.bulk.jobs import BulkDownloadJob, FileState, JobFile
from civitai_tui.bulk.states import JobState

NO_TOKEN = "no API token: CivitAI files that need one will fail (civitai-tui login)"


@dataclass(frozen=True)
class SchedulerView:
    """What the reasons are read from."""

    slots: int  # batches that may run at once
    running: int  # batches running now (those in their pause included)
    pausing: int  # of them: waiting out ``bulk.pause_between_batches``
    pause: float
    sequential: bool
    #: The final path of every file being fetched now -> the id of its job.
    writing: Mapping[str, str]
    #: File key -> why the downloader holds it (a host's connection budget in use).
    held: Mapping[str, str]
    token: bool


def target(f: JobFile) -> str | None:
    """The final path a file is written to (what two jobs may share), when known."""
    return str(f.final) if f.final else None


def slot_reason(view: SchedulerView) -> str:
    """Why the next batch does not start now."""
    if view.running < view.slots:
        return "starting (a batch slot is free)"
    if view.pausing:
        return f"batch pause: {view.pause:g} s between batches (bulk.pause_between_batches)"
    setting = "bulk.strategy = sequential" if view.sequential else "bulk.concurrent_batches"
    return f"all {view.slots} batch slot(s) busy ({setting})"


def explain(ordered: list[BulkDownloadJob], view: SchedulerView) -> None:
    """Set ``waiting`` on every job (``ordered``: the queue's run order first) and on its
    files; None where nothing waits (moving, paused, finished)."""
    finding: BulkDownloadJob | None = None  # the first job still finding its files
    ahead: list[BulkDownloadJob] = []
    for job in ordered:
        job.waiting = None
        active = job.state in (JobState.PENDING, JobState.PROCESSING)
        for f in job.files:
            f.waiting = _file_reason(job, f, view) if active else None
        if not active:
            continue
        if not job.expanded:
            job.waiting = "finding its files (asking CivitAI)"
            finding = finding or job
        elif finding is not None and job.state is JobState.PENDING:
            job.waiting = f"waiting for job {finding.id} ahead in the queue to find its files"
        else:
            job.waiting = _job_reason(job, ahead, view)
        if job.waiting and not view.token:
            job.waiting += f"; {NO_TOKEN}"
        ahead.append(job)


def _file_reason(job: BulkDownloadJob, f: JobFile, view: SchedulerView) -> str | None:
    if f.state is FileState.DOWNLOADING:
        return view.held.get(f.key)
    if f.state is not FileState.PENDING:
        return None
    path = target(f)
    owner = view.writing.get(path) if path else None
    if owner is not None:
        who = "another file of this job" if owner == job.id else f"job {owner}"
        return f"waiting for {who}: it is writing the same file ({path})"
    return slot_reason(view)


def _job_reason(
    job: BulkDownloadJob, ahead: list[BulkDownloadJob], view: SchedulerView
) -> str | None:
    moving = [f for f in job.files if f.state is FileState.DOWNLOADING and not f.waiting]
    reasons = [f.waiting for f in job.files if f.waiting]
    if moving or not reasons:
        return None
    if job.state is JobState.PROCESSING or not ahead:
        return reasons[0]
    higher = sum(1 for other in ahead if other.priority > job.priority)
    of_higher = f", {higher} of higher priority" if higher else ""
    return f"{reasons[0]}; {len(ahead)} job(s) ahead in the queue{of_higher}"
