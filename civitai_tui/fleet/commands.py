"""What the CLI's queue commands do in fleet mode: straight on the fleet's server.

``add`` plans on the client (as ``add --dry-run`` does) and queues the planned files;
``ls``, ``pause``, ``resume``, ``cancel``, ``retry``, ``priority`` and ``wait`` read
and change the server's queue; ``fleet status`` lists the engines. No engine needs to
run on the machine that types them. Job views have the shape of the single engine's
(``BulkDownloadJob.summary``), each file with the engine that holds it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.fleet import registry
from civitai_tui.fleet.connection import FleetUrl
from civitai_tui.fleet.queue import FleetFile, FleetJob, FleetQueue
from civitai_tui.fleet.worker import SERVER_ERRORS

WAIT_POLL_SECONDS = 0.5


@asynccontextmanager
async def fleet_queue(url: FleetUrl, ca_bundle: str = "") -> AsyncIterator[FleetQueue]:
    """The fleet's queue for one command; a server that does not answer is an ENGINE error
    saying which server (credentials masked) and what to check."""
    client = url.client(ca_bundle)
    try:
        yield FleetQueue(client)
    except SERVER_ERRORS as exc:
        raise CivitaiTuiError(
            FailureKind.ENGINE,
            f"the fleet server {url} did not answer ({type(exc).__name__}: {exc}); "
            "check that it runs and fleet.url (or CIVITAI_TUI_FLEET)",
        ) from None
    finally:
        await client.aclose()


def file_view(f: FleetFile) -> dict[str, Any]:
    """One fleet file as ``ls --json`` shows it: with the engine that holds it."""
    info = f.request.get("info", {})
    size = info.get("size")
    done = size if f.state == "completed" else f.checkpoint.get("done", 0)
    return {
        "key": f.id,
        "name": info.get("name", ""),
        "model_type": info.get("model_type", ""),
        "size": size,
        "done": done or 0,
        "state": f.state,
        "engine": f.engine,
        "finished_by": f.detail.get("engine"),
        "attempts": f.attempts,
        "error_kind": f.detail.get("error_kind"),
        "error": f.detail.get("error"),
        "path": f.detail.get("path") if f.state == "completed" else None,
        "sha256": f.detail.get("sha256") or f.request.get("sha256"),
    }


def job_view(job: FleetJob, *, with_files: bool) -> dict[str, Any]:
    """One fleet job in the shape of the single engine's job summary."""
    files = [file_view(f) for f in job.files]
    view = {
        "id": job.id,
        "name": job.name,
        "state": job.state,
        "priority": job.priority,
        "max_speed": None,
        "targets": [],
        "files_total": job.files_total,
        "files_done": sum(1 for f in files if f["state"] == "completed"),
        "files_failed": job.files_failed,
        "total_bytes": sum(f["size"] or 0 for f in files),
        "done_bytes": sum(f["done"] or 0 for f in files),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error": job.fields.get("error") or _failures(files),
        "fleet": True,
    }
    if with_files:
        view["files"] = files
    return view


def _failures(files: list[dict[str, Any]]) -> str | None:
    parts = [f"{f['name']}: {f['error_kind']}: {f['error']}" for f in files if f["error"]]
    return "; ".join(parts) or None


async def views(queue: FleetQueue, *, with_files: bool) -> list[dict[str, Any]]:
    return [job_view(j, with_files=with_files) for j in await queue.jobs(files=True)]


async def resolve(queue: FleetQueue, job_id: str) -> str:
    found = await queue.resolve(job_id)
    if found is None:
        raise CivitaiTuiError(
            FailureKind.UNKNOWN_JOB,
            f"no fleet job with id {job_id!r} (or several start with it); `ls` lists them",
        )
    return found


async def act(
    queue: FleetQueue, job_ids: Sequence[str], action: str, value: int | None = None
) -> list[dict[str, Any]]:
    """Apply ``action`` to each job; the jobs as they are then."""
    ids = [await resolve(queue, j) for j in job_ids]
    for job_id in ids:
        await queue.control(job_id, action, value)
    return [job_view(j, with_files=False) for j in await queue.jobs(files=True, ids=ids)]


async def wait(
    queue: FleetQueue, job_ids: Sequence[str] | None, timeout: float | None
) -> list[dict[str, Any]]:
    """Wait until the jobs (default: all) are finished or paused; raises TimeoutError."""
    ids = [await resolve(queue, j) for j in job_ids] if job_ids else None
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        jobs = await queue.jobs(files=True, ids=ids)
        if all(j.finished or j.state == "paused" for j in jobs):
            return [job_view(j, with_files=False) for j in jobs]
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(WAIT_POLL_SECONDS)  # the server's state, polled


async def status(queue: FleetQueue) -> dict[str, Any]:
    """``fleet status``: the engines and the queue."""
    engines = await registry.engines(queue.client, queue.prefix)
    jobs = await queue.jobs()
    states: dict[str, int] = {}
    for job in jobs:
        states[job.state] = states.get(job.state, 0) + 1
    return {
        "engines": [
            {
                "name": e.name,
                "alive": e.alive,
                "host": e.host,
                "pid": e.pid,
                "in_flight": e.in_flight,
                "bytes_per_second": e.bytes_per_second,
                "last_seen": e.last_seen,
            }
            for e in engines
        ],
        "queue": {
            "jobs": states,
            "files_queued": await queue.queued(),
            "files_leased": await queue.leased(),
        },
    }
