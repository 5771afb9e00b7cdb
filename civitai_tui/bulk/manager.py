"""BulkDownloadManager: runs the queue of jobs, in priority order, in batches.

It owns the jobs (persisted in ``state.db``), the priority queue, the batch
slots and one shared download session (its per-host connection limit keeps any
host from being hammered), and saves their progress. What a job's targets
expand to, and the library's side of each file, is the :class:`JobExpander`'s
(``bulk/expansion.py``). It tells the world what happens only through the
event bus: ``JobStateChanged`` here, file events from the downloader.

(Over 600 lines: scheduling, the user's actions on jobs and saving progress
share the in-flight state — running files, busy paths, unsaved changes — that
splitting them would pass around.)

Pause cancels a job's running downloads (their ``.part`` files and control
files stay, so resume continues from them); cancel also removes the partial
data; retry puts a FAILED or CANCELLED job back in the queue with its failed
files reset. On ``stop`` running jobs go back to PENDING and resume on the next
start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from civitai_tui.binding import bound
from civitai_tui.bulk.batches import AdaptiveSizer, BatchConfig, BatchOutcome, BatchStrategy
from civitai_tui.bulk.expansion import JobExpander, default_name
from civitai_tui.bulk.jobs import BulkDownloadJob, FileState, JobFile, JobOptions
from civitai_tui.bulk.library import Placements
from civitai_tui.bulk.queue import JobQueue
from civitai_tui.bulk.states import JobState
from civitai_tui.bulk.store import JobStore, StoreError
from civitai_tui.bulk.waiting import SchedulerView, explain, target
from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.civitai.targets import UrlTarget, parse_target
from civitai_tui.download.downloader import FileDownloader, unexpected
from civitai_tui.download.session import create_download_session
from civitai_tui.download.settings import DownloadResult, DownloadSettings
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import Event, EventBus, FileProgress, JobStateChanged, StateSaveFailed
from civitai_tui.security.redact import mask_url

log = logging.getLogger(__name__)

PROGRESS_SAVE_SECONDS = 2.0
_ACTIVE = frozenset({JobState.PENDING, JobState.PROCESSING})
#: An ambiguous job-id prefix names at most this many of the jobs it matches.
MAX_CANDIDATES = 5


@dataclasses.dataclass
class ManagerSettings:
    """Where the manager keeps state and how it reaches CivitAI."""

    state_dir: Path
    base_url: str
    #: The token, or a callable asked on every API call (the engine's :class:`TokenKeeper`).
    api_key: str | Callable[[], str | None] | None = dataclasses.field(default=None, repr=False)
    allow_http: bool = False
    layout: str = bound("bulk.layout", "flat")
    template: str = bound("bulk.template", "{type}/{base_model}/{model_name}/{file_name}")
    max_connections_per_host: int = bound("performance.max_connections", 64)
    download: DownloadSettings = dataclasses.field(default_factory=DownloadSettings)
    sidecars: bool = bound("bulk.sidecars", True)
    #: Content the library has elsewhere: "link" (hard link, else reflink, else copy),
    #: "copy" (reflink, else copy) or "download" (fetch it again); see download.dedupe.
    dedupe: str = bound("bulk.dedupe", "link")
    previews: bool = bound("bulk.previews", False)
    preview_nsfw_level: int = bound("bulk.preview_nsfw_level", 1)
    #: Extra keyword arguments of the API client (its rate limiters).
    client_options: dict[str, Any] = dataclasses.field(default_factory=dict)


class BulkDownloadManager:
    """The job queue and its scheduler; usable from a script without the TUI."""

    def __init__(
        self,
        settings: ManagerSettings,
        *,
        bus: EventBus | None = None,
        batch: BatchConfig | None = None,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
    ) -> None:
        self.settings = settings
        self._session_factory = session_factory
        self.bus = bus or EventBus()
        self.batch = batch or BatchConfig()
        self._sizer = AdaptiveSizer(self.batch)
        self._store = JobStore(settings.state_dir / "state.db")
        self._jobs: dict[str, BulkDownloadJob] = {}
        self._queue = JobQueue()
        self._wake = asyncio.Event()
        self._finished = asyncio.Condition()
        self._scheduler: asyncio.Task[None] | None = None
        self._expanding: dict[str, asyncio.Task[None]] = {}
        self._slots: list[asyncio.Task[None]] = []
        self._pausing = 0  # slots waiting out bulk.pause_between_batches
        self._file_tasks: dict[str, asyncio.Task[DownloadResult]] = {}
        self._inflight: dict[str, tuple[BulkDownloadJob, JobFile]] = {}
        self._busy_paths: set[Path] = set()
        self._dirty: dict[str, set[str]] = {}
        self._client: CivitAIClient | None = None
        self._expander: JobExpander | None = None
        #: Fleet mode: what the other engines placed (``civitai_tui.fleet.placements``).
        self.placements: Placements | None = None
        self._session: aiohttp.ClientSession | None = None
        self._downloader: FileDownloader | None = None
        self._unsubscribe = self.bus.add_callback(self._on_event)
        self._saver: asyncio.Task[None] | None = None
        #: Why the last write to state.db failed, while it keeps failing (None: all saved).
        self.store_error: str | None = None
        self._unsaved_jobs: set[str] = set()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Load ``state.db``, requeue unfinished jobs and start scheduling."""
        self._client = CivitAIClient(
            self.settings.base_url,
            self.settings.api_key,
            allow_http=self.settings.allow_http,
            bus=self.bus,
            **self.settings.client_options,
        )
        await self._client.__aenter__()
        self._session = (
            self._session_factory()
            if self._session_factory is not None
            else create_download_session(limit_per_host=self.settings.max_connections_per_host)
        )
        self._expander = JobExpander(self.settings, self._client, self._session, self.placements)
        self._downloader = FileDownloader(
            self._session,
            bus=self.bus,
            settings=self.settings.download,
            resolve=self._client.resolve_source,
        )
        for job in self._store.load_jobs():
            self._jobs[job.id] = job
            self._recover(job)
        self._scheduler = asyncio.create_task(self._schedule(), name="bulk-scheduler")
        self._saver = asyncio.create_task(self._save_progress_forever(), name="bulk-saver")

    async def stop(self) -> None:
        """Stop every download (checkpoints saved), leave running jobs PENDING, close."""
        for task in (self._scheduler, self._saver, *self._expanding.values()):
            if task is not None:
                task.cancel()
        running = {job.id for job, _ in self._inflight.values()}
        await self._cancel_files(lambda job_id: True)
        for job_id in running:
            job = self._jobs[job_id]
            if job.state is JobState.PROCESSING:
                with contextlib.suppress(StoreError):  # reported; the next start recovers it
                    self._set_state(job, JobState.PENDING, "engine stopped")
        for task in self._slots:
            task.cancel()
        await asyncio.gather(*self._slots, *self._expanding.values(), return_exceptions=True)
        self._flush_quietly()
        self._unsubscribe()
        if self._session is not None:
            await self._session.close()
        if self._client is not None:
            await self._client.close()
        self._store.close()
        if self._expander is not None:
            self._expander.close()

    def _recover(self, job: BulkDownloadJob) -> None:
        for f in job.files:
            if f.state is FileState.DOWNLOADING:
                f.state = FileState.PENDING
        if job.state is JobState.PROCESSING:
            job.transition(JobState.PENDING)
            self._save_job(job)
        if job.state is JobState.PENDING:
            self._queue.push(job.id, job.priority, job.seq)

    # ------------------------------------------------------------------ queries

    @property
    def downloader(self) -> FileDownloader | None:
        """The shared file downloader (None until ``start``); the optimizer tunes it."""
        return self._downloader

    def jobs(self) -> list[BulkDownloadJob]:
        """Every job: waiting ones in run order first, then the rest by arrival; each
        with why it waits (``waiting``), as of now."""
        order = {job_id: i for i, job_id in enumerate(self._queue.ordered())}
        jobs = sorted(self._jobs.values(), key=lambda j: (order.get(j.id, len(order)), j.seq))
        explain(jobs, self._scheduler_view())
        return jobs

    def explain_waiting(self) -> None:
        """Set every job's and file's ``waiting`` (why it is not moving) as of now."""
        self.jobs()

    def _scheduler_view(self) -> SchedulerView:
        key = self.settings.api_key
        token = key() if callable(key) else key
        return SchedulerView(
            slots=self.batch.slots,
            running=len([t for t in self._slots if not t.done()]),
            pausing=self._pausing,
            pause=self.batch.pause_between_batches,
            sequential=self.batch.strategy is BatchStrategy.SEQUENTIAL,
            writing={path: job.id for job, f in self._inflight.values() if (path := target(f))},
            held=self._downloader.held() if self._downloader is not None else {},
            token=bool(token),
        )

    def get(self, job_id: str) -> BulkDownloadJob:
        """The job with this id, or the only one whose id starts with it (as git takes
        commit prefixes); an ambiguous prefix is an error naming the candidates."""
        job = self._jobs.get(job_id)
        if job is not None:
            return job
        found = [j for jid, j in self._jobs.items() if job_id and jid.startswith(job_id)]
        if len(found) == 1:
            return found[0]
        if found:
            ids = ", ".join(sorted(j.id for j in found)[:MAX_CANDIDATES])
            more = f" and {len(found) - MAX_CANDIDATES} more" if len(found) > MAX_CANDIDATES else ""
            raise CivitaiTuiError(
                FailureKind.UNKNOWN_JOB,
                f"job id {job_id!r} is ambiguous: {len(found)} jobs start with it "
                f"({ids}{more}); type more of the id",
            )
        raise CivitaiTuiError(FailureKind.UNKNOWN_JOB, f"no job with id {job_id!r}")

    # ------------------------------------------------------------------ actions

    def kick(self) -> None:
        """Re-run the scheduler now (after a live settings change)."""
        self._wake.set()

    async def add_job(
        self,
        targets: Sequence[str],
        *,
        priority: int = 0,
        options: JobOptions | None = None,
        name: str | None = None,
    ) -> BulkDownloadJob:
        """Queue a job for ``targets`` (validated now, expanded when it first runs)."""
        parsed = [parse_target(t, self.settings.base_url) for t in targets]
        job = BulkDownloadJob(
            name=name or default_name(parsed),
            # A CivitAI URL may carry the user's ?token=: stored masked (it parses the
            # same without it). Another host's URL is kept whole: its signature is
            # what fetches the file.
            targets=tuple(
                t if isinstance(p, UrlTarget) or "://" not in t else mask_url(t)
                for t, p in zip(targets, parsed, strict=True)
            ),
            options=options or JobOptions(),
            priority=priority,
            seq=self._store.next_seq(),
        )
        try:
            self._store.save_job(job)  # first: a job that is not saved does not exist
        except StoreError as err:
            self._store_failed(err)
            raise
        self._jobs[job.id] = job
        self.bus.publish(JobStateChanged(job_id=job.id, old=None, new=str(job.state)))
        self._queue.push(job.id, job.priority, job.seq)
        self._wake.set()
        return job

    async def pause_all(self) -> list[str]:
        """Pause every PENDING or PROCESSING job; returns their ids."""
        ids = [j.id for j in self._jobs.values() if j.state in _ACTIVE]
        for job_id in ids:
            await self.pause(job_id)
        return ids

    async def resume_all(self) -> list[str]:
        """Resume every PAUSED job; returns their ids."""
        ids = [j.id for j in self._jobs.values() if j.state is JobState.PAUSED]
        for job_id in ids:
            await self.resume(job_id)
        return ids

    async def pause(self, job_id: str) -> BulkDownloadJob:
        """Stop a job's downloads, keeping their partial data."""
        job = self.get(job_id)
        if job.state is JobState.PAUSED:
            return job
        self._set_state(job, JobState.PAUSED, "paused by user")
        self._queue.remove(job.id)
        await self._cancel_files(lambda jid: jid == job.id)
        return job

    async def resume(self, job_id: str) -> BulkDownloadJob:
        """Put a paused job back in the queue."""
        job = self.get(job_id)
        if job.state is not JobState.PAUSED:
            return job
        self._set_state(job, JobState.PENDING, "resumed by user")
        self._queue.push(job.id, job.priority, job.seq)
        self._wake.set()
        return job

    async def cancel(self, job_id: str) -> BulkDownloadJob:
        """Stop a job and remove its partial data (finished files stay)."""
        job = self.get(job_id)
        self._set_state(job, JobState.CANCELLED, "cancelled by user")
        self._queue.remove(job.id)
        await self._cancel_files(lambda jid: jid == job.id)
        assert self._downloader is not None
        for f in job.files:
            if not f.state.done:
                self._downloader.discard_partial(f.request)
                f.state, f.done = FileState.CANCELLED, 0
        self._save_files(job, job.files)
        await self._notify_finished()
        return job

    async def retry(self, job_id: str) -> BulkDownloadJob:
        """Queue a finished job again: unfinished files (and done ones no longer at their
        destination) start over; files still in place stay done."""
        job = self.get(job_id)
        self._set_state(job, JobState.PENDING, "retry requested")
        job.error = None if job.files else job.error
        for f in job.files:
            if not f.state.done or not _at_destination(f):
                f.state, f.attempts, f.error, f.error_kind, f.last_status = (
                    FileState.PENDING,
                    0,
                    None,
                    None,
                    None,
                )
                f.path, f.method, f.warning = None, None, None
                f.origin = self._expansion().copy_elsewhere(f)
        if not job.files:
            job.expanded = False
        self._save_job(job)
        self._queue.push(job.id, job.priority, job.seq)
        self._wake.set()
        return job

    async def set_priority(self, job_id: str, priority: int) -> BulkDownloadJob:
        job = self.get(job_id)
        old, job.priority = job.priority, priority
        try:
            self._store.save_job(job, with_files=False)
        except StoreError:
            job.priority = old
            raise
        self._queue.reprioritize(job.id, priority)
        self._wake.set()
        return job

    async def set_max_speed(self, job_id: str, rate: int | None) -> BulkDownloadJob:
        """A job's own speed limit (bytes/s, None or 0: none), applied to its running files."""
        job = self.get(job_id)
        old, job.options = job.options, dataclasses.replace(job.options, max_speed=rate or None)
        try:
            self._store.save_job(job, with_files=False)
        except StoreError:
            job.options = old
            raise
        self.settings.download.speed.set_job(job.id, rate or 0)
        return job

    async def remove_finished(self) -> list[str]:
        """Forget COMPLETED / FAILED / CANCELLED jobs (files on disk stay)."""
        gone = [j.id for j in self._jobs.values() if j.state.finished]
        for job_id in gone:
            self._store.delete_job(job_id)
            del self._jobs[job_id]
        return gone

    async def wait(
        self, job_ids: Iterable[str] | None = None, timeout: float | None = None
    ) -> bool:
        """Wait until the jobs (default: all) are finished; True if all COMPLETED."""
        ids = [self.get(job_id).id for job_id in job_ids] if job_ids is not None else None

        def finished() -> bool:
            jobs = [self._jobs[i] for i in ids] if ids is not None else self._jobs.values()
            return all(j.state.finished or j.state is JobState.PAUSED for j in jobs)

        async with self._finished, asyncio.timeout(timeout):
            await self._finished.wait_for(finished)
        jobs = [self._jobs[i] for i in ids] if ids is not None else list(self._jobs.values())
        return all(j.state is JobState.COMPLETED for j in jobs)

    # --------------------------------------------------------------- scheduling

    async def _schedule(self) -> None:
        while True:
            self._slots = [t for t in self._slots if not t.done()]
            try:
                self._expand_ahead()
                while len(self._slots) < self.batch.slots and self._start_next_batch():
                    pass
            except StoreError:
                pass  # reported; the saver wakes us once state.db takes writes again
            except Exception:  # the scheduler must outlive any one job's surprise
                log.exception("scheduling failed; trying again on the next change")
            self._wake.clear()
            await self._wake.wait()

    def _expand_ahead(self) -> None:
        """List every queued job's files now (concurrently), not when a slot frees up:
        sizes, names and why a job waits show while the slots are busy."""
        for job_id in self._queue.ordered():
            job = self._jobs[job_id]
            if not job.expanded and job_id not in self._expanding:
                self._expanding[job_id] = asyncio.create_task(self._expand(job))

    def _start_next_batch(self) -> bool:
        """Start one batch from the first job in priority order that has work.

        Every queued job is expanded (concurrently, ahead of time), but a job
        never overtakes a higher-priority one that is still expanding: the queue
        order is the order downloads start.
        """
        waiting_for_expansion = False
        for job_id in self._queue.ordered():
            job = self._jobs[job_id]
            if not job.expanded:  # being expanded (``_expand_ahead``)
                waiting_for_expansion = True
                continue
            if waiting_for_expansion:
                continue
            if job.state is JobState.PENDING and self._has_work(job):
                self._set_state(job, JobState.PROCESSING, "started")  # saved before it runs
            files = self._pick_files(job, self._sizer.next_size())
            if files:
                self._slots.append(asyncio.create_task(self._run_batch(job, files)))
                return True
            if not any(key.startswith(job.id + ":") for key in self._inflight) and not any(
                f.state is FileState.PENDING
                for f in job.files  # waiting for a busy path
            ):
                self._finish(job)
        return False

    def _has_work(self, job: BulkDownloadJob) -> bool:
        return any(f.state is FileState.PENDING for f in job.files)

    def _pick_files(self, job: BulkDownloadJob, size: int) -> list[JobFile]:
        picked = []
        for f in job.files:
            if len(picked) >= size:
                break
            final = f.final
            if f.state is FileState.PENDING and final not in self._busy_paths:
                picked.append(f)
                if final is not None:
                    self._busy_paths.add(final)
                f.state = FileState.DOWNLOADING
                self._inflight[f.key] = (job, f)
        return picked

    async def _run_batch(self, job: BulkDownloadJob, files: list[JobFile]) -> None:
        started = time.monotonic()
        tasks = []
        for f in files:
            task = asyncio.create_task(self._download(job, f))
            self._file_tasks[f.key] = task
            tasks.append(task)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        outcome = BatchOutcome(
            files=len(files),
            failed=sum(
                1 for r in results if isinstance(r, DownloadResult) and r.status == "failed"
            ),
            bytes=sum(r.fetched_bytes for r in results if isinstance(r, DownloadResult)),
            seconds=time.monotonic() - started,
        )
        self._sizer.record(outcome)
        if self.batch.pause_between_batches > 0:
            self._pausing += 1
            try:
                await asyncio.sleep(self.batch.pause_between_batches)
            finally:
                self._pausing -= 1
        self._wake.set()

    async def _download(self, job: BulkDownloadJob, f: JobFile) -> DownloadResult:
        assert self._downloader is not None
        try:
            expander = self._expansion()
            f.origin = f.origin or expander.copy_elsewhere(f)  # one may have landed since
            f.origin = f.origin or await expander.copy_in_fleet(f)
            placed = await expander.place(f) if f.origin else None
            result = placed or await self._downloader.download(f.request)
            await self._apply_result(job, f, result)
        except asyncio.CancelledError:
            if f.state is FileState.DOWNLOADING:  # paused or stopped: resumable later
                f.state = FileState.PENDING
            self._save_files(job, [f])
            raise
        except Exception as exc:  # a surprise ends the file FAILED, never left DOWNLOADING
            result = DownloadResult("failed", None, error=unexpected(f.request, exc))
            self._fail_file(job, f, result)
        finally:
            self._file_tasks.pop(f.key, None)
            self._inflight.pop(f.key, None)
            if f.final is not None:
                self._busy_paths.discard(f.final)
        return result

    async def _apply_result(self, job: BulkDownloadJob, f: JobFile, result: DownloadResult) -> None:
        f.attempts += max(1, result.retries + 1)
        if result.status in ("completed", "skipped"):
            f.state = FileState.COMPLETED if result.status == "completed" else FileState.SKIPPED
            if result.status == "completed":
                f.method, f.origin = "download", None
            elif f.origin is None:
                f.method = "present"
            f.done = result.bytes
            f.path = str(result.path) if result.path else f.path
            f.error = f.error_kind = None
            if result.path is not None:
                await self._expansion().in_place(f, result.path, result.sha256)
            self._save_files(job, [f])
        else:
            self._fail_file(job, f, result)

    def _fail_file(self, job: BulkDownloadJob, f: JobFile, result: DownloadResult) -> None:
        err = result.error
        f.state = FileState.FAILED
        f.error_kind = str(err.kind) if err else "unknown"
        f.error = err.message if err else "failed"
        f.last_status = err.status if err else None
        self._save_files(job, [f])

    def _finish(self, job: BulkDownloadJob) -> None:
        """End a job: COMPLETED only when every file is done *where it was asked for*.

        It leaves the queue only once its end is saved (else: the next wake tries again).
        """
        if job.state is JobState.PENDING:  # nothing to download (all present, or empty)
            self._set_state(job, JobState.PROCESSING, "started")
        missing = [f for f in job.files if f.state.done and not _at_destination(f)]
        for f in missing:
            f.state, f.error_kind = FileState.FAILED, str(FailureKind.FILESYSTEM)
            f.error = f"{f.path or f.info.name} is not there any more; a retry fetches it again"
            log.warning("job %s: %s", job.id, f.error)
        if missing:
            self._save_files(job, missing)
        if job.failures or job.error or job.files_done < len(job.files):
            self._set_state(job, JobState.FAILED, job.failure_summary() or "not every file is done")
        else:
            self._set_state(job, JobState.COMPLETED, f"{job.files_done} file(s)")
        self._queue.remove(job.id)
        asyncio.get_running_loop().create_task(self._notify_finished())

    async def _notify_finished(self) -> None:
        async with self._finished:
            self._finished.notify_all()

    async def _cancel_files(self, belongs: Callable[[str], bool]) -> None:
        tasks = [
            task
            for key, task in self._file_tasks.items()
            if key in self._inflight and belongs(self._inflight[key][0].id)
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._flush_quietly()

    # ---------------------------------------------------------------- expansion

    async def preview(self, targets: Sequence[str], options: JobOptions) -> dict[str, object]:
        """What a job for ``targets`` would download, without queueing it."""
        return await self._expansion().preview(targets, options)

    async def _expand(self, job: BulkDownloadJob) -> None:
        try:
            await self._expansion().expand(job)
        finally:
            self._expanding.pop(job.id, None)
        self._save_job(job)
        self._wake.set()

    def _expansion(self) -> JobExpander:
        assert self._expander is not None, "the manager is not started"
        return self._expander

    # ---------------------------------------------------------------- plumbing

    def _set_state(self, job: BulkDownloadJob, new: JobState, reason: str) -> None:
        """Change and save a job's state; when the save fails, memory keeps the old state."""
        before = (job.state, job.started_at, job.finished_at)
        old = job.transition(new)
        try:
            self._store.save_job(job, with_files=False)
        except StoreError as err:
            job.state, job.started_at, job.finished_at = before
            self._store_failed(err)
            raise
        self.bus.publish(JobStateChanged(job_id=job.id, old=str(old), new=str(new), reason=reason))
        if new.finished or new is JobState.PAUSED:
            asyncio.get_running_loop().create_task(self._notify_finished())

    def _on_event(self, event: Event) -> None:
        if isinstance(event, FileProgress):
            entry = self._inflight.get(event.key)
            if entry is not None:
                job, f = entry
                f.done = event.done
                if event.total:
                    f.learn_size(event.total)
                self._dirty.setdefault(job.id, set()).add(f.key)

    def _save_files(self, job: BulkDownloadJob, files: list[JobFile]) -> None:
        """Save files' rows; on failure they stay dirty and the saver tries again."""
        try:
            self._store.save_files(job.id, files)
        except StoreError as err:
            self._dirty.setdefault(job.id, set()).update(f.key for f in files)
            self._store_failed(err)

    def _store_failed(self, err: StoreError) -> None:
        """Say it once per streak (log, event, ``store_error``); the saver keeps trying."""
        if self.store_error is None:
            log.error("state.db: %s", err.message)
            self.bus.publish(StateSaveFailed(message=err.message))
        self.store_error = err.message

    async def _save_progress_forever(self) -> None:
        """Save progress every few seconds, and after a failed write retry what waits."""
        while True:
            await asyncio.sleep(PROGRESS_SAVE_SECONDS)
            try:
                if self.store_error is not None:
                    self._store.touch()  # nothing may wait, yet only a write tells
                self._flush_progress()
            except StoreError as err:
                self._store_failed(err)
                continue
            if self.store_error is not None:
                log.info("state.db: saving again")
                self.store_error = None
                self.bus.publish(StateSaveFailed(message="", recovered=True))
                self._wake.set()  # job changes that could not be saved are made again

    def _flush_progress(self) -> None:
        """Save what waits: whole jobs first (expanded or reset files), then files' progress.

        Whatever could not be saved keeps waiting, and the StoreError is raised.
        """
        for job_id in list(self._unsaved_jobs):
            job = self._jobs.get(job_id)
            if job is not None:
                self._store.save_job(job)
            self._unsaved_jobs.discard(job_id)
        dirty, self._dirty = self._dirty, {}
        try:
            for job_id, keys in list(dirty.items()):
                job = self._jobs.get(job_id)
                if job is not None:
                    self._store.save_files(job_id, [f for f in job.files if f.key in keys])
                del dirty[job_id]
        finally:
            for job_id, keys in dirty.items():
                self._dirty.setdefault(job_id, set()).update(keys)

    def _save_job(self, job: BulkDownloadJob) -> None:
        """Save a job with its files; on failure it waits for the saver."""
        try:
            self._store.save_job(job)
        except StoreError as err:
            self._unsaved_jobs.add(job.id)
            self._store_failed(err)

    def _flush_quietly(self) -> None:
        """Flush where a failure must not stop the caller (it is reported and retried)."""
        try:
            self._flush_progress()
        except StoreError as err:
            self._store_failed(err)


def _at_destination(f: JobFile) -> bool:
    """The file is where the job asked for it (a file, not a folder, in its folder)."""
    path = Path(f.path) if f.path is not None else None
    return path is not None and path.parent == f.request.dest_dir and path.is_file()
