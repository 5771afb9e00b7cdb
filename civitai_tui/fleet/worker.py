"""The engine's side of the fleet: claim files, download them, renew their leases, report.

:class:`FleetWorker` runs beside the engine's own queue when ``fleet.url`` is set. It
claims up to ``slots`` files at a time and runs each through the engine's downloader:

* each engine writes its own part file (``<name>.<tag>.part``, the tag a hash of its
  name): a writer cut off from the server can never spoil another's bytes;
* a file claimed after another engine's lease lapsed starts from that engine's part
  and control file when they are visible (shared storage), else from scratch;
* the lease is renewed every third of it (at most every ``checkpoint`` seconds) with the
  bytes done; the answer stops the file when its job was paused or cancelled, or when
  another engine holds it now (fenced out);
* right before the rename into place the lease is renewed once more: only the holder
  of the current token publishes; a fenced-out engine drops its copy;
* an unreachable server means "lease uncertain", never a crash: running files go on,
  no new work is taken, and the result is reported once the server answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.exceptions

from civitai_tui.download.control import control_path
from civitai_tui.download.downloader import FileDownloader
from civitai_tui.download.naming import choose_filename
from civitai_tui.download.request import DownloadRequest
from civitai_tui.download.settings import DownloadResult
from civitai_tui.download.transfer import part_path
from civitai_tui.events import Event, EventBus, FileProgress
from civitai_tui.fleet import registry
from civitai_tui.fleet.queue import Claim, FleetQueue
from civitai_tui.fleet.records import request_from_text
from civitai_tui.fleet.registry import EngineBeat
from civitai_tui.fleet.settings import FleetSettings
from civitai_tui.security.redact import mask_text

log = logging.getLogger(__name__)

#: Seconds between claims when nothing waits, and after the server did not answer.
IDLE_SECONDS = 0.5
UNREACHABLE_SECONDS = 2.0
#: What a failed round trip to the server raises.
SERVER_ERRORS = (redis.exceptions.RedisError, OSError)


def part_tag(engine: str) -> str:
    """The part-file tag of ``engine`` (a hash: no host names or paths in file names)."""
    return "f" + hashlib.sha256(engine.encode()).hexdigest()[:10]


@dataclass
class _Running:
    claim: Claim
    task: asyncio.Task[None] | None = None
    done: int = 0
    fenced: bool = False


class FleetWorker:
    """Claims and runs fleet files in this engine (see the module's docstring)."""

    def __init__(
        self,
        queue: FleetQueue,
        settings: FleetSettings,
        *,
        downloader: Callable[[], FileDownloader | None],
        bus: EventBus,
        slots: int,
        state_dir: Path,
        checkpoint_seconds: float = 2.0,
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.name = settings.name
        self.tag = part_tag(settings.name)
        self._downloader = downloader
        self.bus = bus
        self.slots = max(1, slots)
        self._renew_every = min(settings.lease / 3, max(0.2, checkpoint_seconds))
        self._running: dict[str, _Running] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._beat = EngineBeat.here(self.name, str(state_dir), time.time())
        self._bytes = 0
        #: Why the server cannot be reached, while it cannot (None: it answers).
        self.server_error: str | None = None
        self._unsubscribe = bus.add_callback(self._on_event)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Take up the files this engine still holds (a restart within the lease), then
        claim and beat in the background."""
        try:
            for claim in await self.queue.held(self.name):
                log.info("fleet: taking up %s again (held before a restart)", claim.file_id)
                self._launch(claim)
        except SERVER_ERRORS as exc:
            self._unreachable(exc)
        self._tasks = [
            asyncio.create_task(self._claim_forever(), name="fleet-claim"),
            asyncio.create_task(self._beat_forever(), name="fleet-beat"),
        ]

    async def stop(self) -> None:
        """Stop claiming, stop every file (released to the fleet with its checkpoint)."""
        for task in self._tasks:
            task.cancel()
        running = [r.task for r in self._running.values() if r.task is not None]
        for task in running:
            task.cancel()
        await asyncio.gather(*self._tasks, *running, return_exceptions=True)
        self._unsubscribe()
        with contextlib.suppress(*SERVER_ERRORS):
            await registry.leave(self.queue.client, self.name)
        await self.queue.client.aclose()

    def status(self) -> dict[str, Any]:
        """What ``engine status`` shows of this engine's fleet work."""
        return {
            "name": self.name,
            "in_flight": len(self._running),
            "server_error": self.server_error,
        }

    # ------------------------------------------------------------------ claiming

    async def _claim_forever(self) -> None:
        while True:
            if len(self._running) >= self.slots:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                claim = await self.queue.claim(self.name, self.settings.lease)
            except SERVER_ERRORS as exc:
                self._unreachable(exc)
                await asyncio.sleep(UNREACHABLE_SECONDS)
                continue
            self._reachable()
            if claim is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)
                continue
            self._launch(claim)

    def _launch(self, claim: Claim) -> None:
        run = _Running(claim)
        self._running[claim.file_id] = run
        run.task = asyncio.create_task(self._run(run), name=f"fleet-{claim.file_id}")

    async def _beat_forever(self) -> None:
        last, last_bytes = time.monotonic(), 0
        while True:
            now = time.monotonic()
            rate = (self._bytes - last_bytes) / max(1e-3, now - last)
            last, last_bytes = now, self._bytes
            beat = EngineBeat(
                **{
                    **self._beat.__dict__,
                    "in_flight": len(self._running),
                    "bytes_per_second": round(rate, 1),
                }
            )
            try:
                await registry.beat(self.queue.client, beat)
                self._reachable()
            except SERVER_ERRORS as exc:
                self._unreachable(exc)
            await asyncio.sleep(registry.BEAT_SECONDS)

    # ------------------------------------------------------------------ one file

    async def _run(self, run: _Running) -> None:
        claim = run.claim
        try:
            downloader = self._downloader()
            assert downloader is not None, "the engine's downloader runs before the fleet"
            request = request_from_text(claim.request, claim.file_id)
            await asyncio.to_thread(self._take_over_part, request, claim)
            download = asyncio.create_task(
                downloader.download(
                    request, part_tag=self.tag, may_publish=lambda: self._may_publish(run)
                )
            )
            verdict = await self._renew_while(download, run)
            if verdict == "run":
                await self._report(run, download.result())
                return
            download.cancel()
            await asyncio.gather(download, return_exceptions=True)
            if verdict == "lost":
                self._fenced_out(run, request, downloader)
            else:  # paused or cancelled: the server decides from the job's state
                if verdict == "cancelled":
                    downloader.discard_partial(request, part_tag=self.tag)
                await self._tell(run, "released", {"done": run.done})
                log.info("fleet: %s stopped (%s)", claim.file_id, verdict)
        except asyncio.CancelledError:  # the engine stops: the file goes back to the fleet
            with contextlib.suppress(*SERVER_ERRORS):
                await asyncio.shield(self.queue.finish(claim, "released", {"done": run.done}))
            raise
        except Exception as exc:  # any surprise ends the file FAILED, with its reason
            log.exception("fleet: %s failed", claim.file_id)
            await self._tell(run, "failed", {"error": mask_text(f"unexpected error: {exc}")})
        finally:
            self._running.pop(claim.file_id, None)
            self._wake.set()

    async def _renew_while(self, download: asyncio.Task[DownloadResult], run: _Running) -> str:
        """Renew the lease until the download ends ('run') or the server says to stop."""
        while True:
            done, _ = await asyncio.wait({download}, timeout=self._renew_every)
            if done:
                return "run"
            try:
                verdict = await self.queue.renew(
                    run.claim, self.settings.lease, {"done": run.done, "engine": self.name}
                )
            except SERVER_ERRORS as exc:  # lease uncertain: go on, never crash
                self._unreachable(exc)
                continue
            self._reachable()
            if verdict != "run":
                return verdict

    async def _may_publish(self, run: _Running) -> bool:
        """Right before the rename: is this engine still the file's holder? Waits for the
        server when it does not answer (the file stays in this engine's part meanwhile)."""
        while True:
            try:
                verdict = await self.queue.renew(run.claim, self.settings.lease)
            except SERVER_ERRORS as exc:
                self._unreachable(exc)
                await asyncio.sleep(UNREACHABLE_SECONDS)
                continue
            self._reachable()
            run.fenced = verdict == "lost"
            return verdict == "run"

    async def _report(self, run: _Running, result: DownloadResult) -> None:
        if run.fenced:
            log.warning(
                "fleet: %s was taken over by another engine; this copy was dropped",
                run.claim.file_id,
            )
            return
        detail: dict[str, Any] = {
            "path": str(result.path) if result.path else None,
            "bytes": result.bytes,
            "sha256": result.sha256,
            "verified": result.verified,
            "engine": self.name,
        }
        if result.status in ("completed", "skipped"):
            await self._tell(run, "completed", {**detail, "how": result.status})
        else:
            err = result.error
            detail.update(
                error_kind=str(err.kind) if err else "unknown",
                error=err.message if err else "failed",
                status=err.status if err else None,
            )
            await self._tell(run, "failed", detail)

    async def _tell(self, run: _Running, outcome: str, detail: dict[str, Any]) -> None:
        """Report an outcome, trying until the server answers (a result is never lost)."""
        while True:
            try:
                if not await self.queue.finish(run.claim, outcome, detail):
                    log.warning("fleet: %s fenced out: %s not recorded", run.claim.file_id, outcome)
                self._reachable()
                return
            except SERVER_ERRORS as exc:
                self._unreachable(exc)
                await asyncio.sleep(UNREACHABLE_SECONDS)

    def _fenced_out(self, run: _Running, request: DownloadRequest, dl: FileDownloader) -> None:
        log.warning(
            "fleet: %s is held by another engine now (this engine's lease lapsed); "
            "its part file here is dropped",
            run.claim.file_id,
        )
        dl.discard_partial(request, part_tag=self.tag)

    def _take_over_part(self, request: DownloadRequest, claim: Claim) -> None:
        """Start from the previous holder's part and control file when this engine sees
        them (shared storage) and has none of its own: copied, never moved (its writer
        may still be alive); the hash check at the end has the last word."""
        if not claim.previous_engine or claim.previous_engine == self.name or not request.filename:
            return
        name = choose_filename(request.filename, None, None, "")
        theirs = part_path(request.dest_dir, name, part_tag(claim.previous_engine))
        mine = part_path(request.dest_dir, name, self.tag)
        if mine.exists() or not (theirs.exists() and control_path(theirs).exists()):
            return
        try:
            shutil.copyfile(control_path(theirs), control_path(mine))  # the checkpoint first
            shutil.copyfile(theirs, mine)
        except OSError as exc:
            log.warning("fleet: cannot start from %s (%s); starting afresh", theirs, exc)
            mine.unlink(missing_ok=True)
            control_path(mine).unlink(missing_ok=True)
            return
        log.info("fleet: %s resumes from %s's checkpoint", claim.file_id, claim.previous_engine)

    # ------------------------------------------------------------------ plumbing

    def _on_event(self, event: Event) -> None:
        if isinstance(event, FileProgress):
            run = self._running.get(event.key)
            if run is not None:
                self._bytes += max(0, event.done - run.done)
                run.done = event.done

    def _unreachable(self, exc: BaseException) -> None:
        if self.server_error is None:
            log.warning(
                "fleet server %s unreachable (%s): files here go on, no new work is taken",
                self.settings.url,
                mask_text(str(exc)) or type(exc).__name__,
            )
        self.server_error = mask_text(str(exc)) or type(exc).__name__

    def _reachable(self) -> None:
        if self.server_error is not None:
            log.info("fleet server %s answers again", self.settings.url)
            self.server_error = None
