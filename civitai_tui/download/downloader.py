"""Downloading one file end to end: refuse, skip, transfer, verify, move into place.

:class:`FileDownloader` is what the bulk manager and the CLI call. For each
:class:`DownloadRequest` it refuses files CivitAI's own scan flagged as
dangerous (before any byte), skips a final file that is already right, runs a
:class:`Transfer` into the ``.part``, verifies it (size, hash, format, pickle
scan), and only then renames it into place; a file that fails verification goes
to quarantine. It publishes ``FileFailed``/``FileCompleted``/
``SecurityScanFinished`` and returns a :class:`DownloadResult`. Cancelling the
task pauses: the ``.part`` and its control file stay for a resume;
:meth:`discard_partial` removes them (a cancel).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from civitai_tui.download import disk
from civitai_tui.download.control import control_path, remove_control
from civitai_tui.download.naming import choose_filename
from civitai_tui.download.request import DownloadRequest, Resolver, resolve_direct
from civitai_tui.download.settings import DownloadResult, DownloadSettings
from civitai_tui.download.transfer import HostPool, Transfer, part_path
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import (
    NULL_BUS,
    EventBus,
    FileCompleted,
    FileFailed,
    SecurityScanFinished,
)
from civitai_tui.security.hashing import same_hash, sha256_file
from civitai_tui.security.quarantine import QuarantineNote, quarantine
from civitai_tui.security.verify import Expectations, VerifyReport, verify_file

log = logging.getLogger(__name__)


class FileDownloader:
    """Downloads files with a shared byte session (see ``create_download_session``)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        bus: EventBus = NULL_BUS,
        settings: DownloadSettings | None = None,
        resolve: Resolver = resolve_direct,
    ) -> None:
        self.session = session
        #: Turns a request's source into a URL (the API client's, for CivitAI files).
        self.resolve = resolve
        self.bus = bus
        self.settings = settings or DownloadSettings()
        self._pool = HostPool(self.settings)
        self._active = self._pool.transfers

    @property
    def pool(self) -> HostPool:
        """The running transfers by host (fleet mode sizes its shared budgets from it)."""
        return self._pool

    def set_connections(self, connections: int) -> None:
        """Change the per-file connection count now, for running and future downloads."""
        self.settings.connections = max(1, connections)
        for transfer in self._active:
            transfer.adjust()

    def set_host_connections(self, host: str, connections: int, total: int | None = None) -> None:
        """Change the per-file connection count for files on ``host``, now and later;
        ``total``: the most connections all files on ``host`` may have together (a
        server's per-client limit: further files wait for a slot), None: no such cap."""
        self.settings.host_connections[host] = max(1, connections)
        if total is None:
            self.settings.host_budget.pop(host, None)
        else:
            self.settings.host_budget[host] = max(1, total)
        for transfer in list(self._active):
            transfer.adjust()
        self._pool.freed(host)

    def held(self) -> dict[str, str]:
        """Files waiting for a connection to their host, by key: why, in words."""
        pool = self._pool
        return {
            key: f"waiting for a connection to {host}: its {pool.budget(host)} allowed "
            "connection(s) are in use"
            for key, host in pool.waiting.items()
        }

    async def download(
        self,
        request: DownloadRequest,
        *,
        part_tag: str = "",
        may_publish: Callable[[], Awaitable[bool]] | None = None,
    ) -> DownloadResult:
        """Fetch, verify and place one file; failures are returned, cancellation propagates.

        Fleet mode: ``part_tag`` names this engine's own part file; ``may_publish`` is asked
        once the file is verified, right before the rename into place: False (another engine
        holds the file now) drops this copy and fails the download as CANCELLED.
        """
        started = time.monotonic()
        transfer = Transfer(
            self.session,
            request,
            self.settings,
            self.bus,
            self._pool,
            resolve=self.resolve,
            part_tag=part_tag,
        )
        try:
            result = await self._download(request, transfer, started, may_publish)
        except CivitaiTuiError as err:
            result = self._failed(request, transfer, err)
        except Exception as exc:  # any surprise ends the file FAILED, never "done"
            result = self._failed(request, transfer, unexpected(request, exc))
        result.duration = time.monotonic() - started
        return result

    def discard_partial(
        self, request: DownloadRequest, name: str | None = None, part_tag: str = ""
    ) -> None:
        """Delete the ``.part`` and control file of ``request`` (a cancelled download)."""
        if name is None and request.filename:
            name = choose_filename(request.filename, None, None, "")
        if name is None:
            return
        part = part_path(request.dest_dir, name, part_tag)
        part.unlink(missing_ok=True)
        remove_control(control_path(part))

    async def _download(
        self,
        request: DownloadRequest,
        transfer: Transfer,
        started: float,
        may_publish: Callable[[], Awaitable[bool]] | None,
    ) -> DownloadResult:
        refuse_flagged(request)
        self._prepare_dest(request, transfer)
        if transfer.name is not None:
            if not transfer.part.exists():  # a kill between the final rename and its removal
                remove_control(transfer.ctl)
            skipped = await self._skip_if_present(request, transfer.final)
            if skipped is not None:
                return skipped
        self._active.add(transfer)
        try:
            await transfer.run()
        finally:
            self._active.discard(transfer)
        return await self._finish(request, transfer, started, may_publish)

    def _prepare_dest(self, request: DownloadRequest, transfer: Transfer) -> None:
        """Create the folder and, when the size is listed, check space before any request."""
        try:
            request.dest_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise disk.filesystem_error(request.dest_dir, exc) from exc
        if request.expected_size is None:
            return
        allocated = 0
        if transfer.name is not None and transfer.part.exists():
            allocated = transfer.part.stat().st_blocks * 512
        needed = max(0, request.expected_size - allocated)
        disk.check_free_space(
            request.dest_dir,
            needed,
            self.settings.min_free_space,
            request.filename or request.info.name or "the file",
            partial=allocated > 0,
        )

    async def _skip_if_present(
        self, request: DownloadRequest, final: Path
    ) -> DownloadResult | None:
        """A final file with the right size (and hash, when one is known) needs no download."""
        try:
            size = final.stat().st_size
        except FileNotFoundError:
            return None
        if request.expected_size is not None and size != request.expected_size:
            return None
        if not request.sha256:
            if request.expected_size is None:
                return None  # nothing to compare with: fetch it again
            return DownloadResult("skipped", final, bytes=size)
        digest = await sha256_file(final)
        if not same_hash(digest, request.sha256):
            return None
        return DownloadResult("skipped", final, bytes=size, sha256=digest, verified=True)

    async def _finish(
        self,
        request: DownloadRequest,
        transfer: Transfer,
        started: float,
        may_publish: Callable[[], Awaitable[bool]] | None,
    ) -> DownloadResult:
        assert transfer.name is not None and transfer.size is not None
        expect = Expectations(transfer.name, transfer.size, request.sha256, request.blake3)
        report = await verify_file(
            transfer.part, expect, transfer.sha256, self.settings.verify.pickle_timeout
        )
        self.bus.publish(
            SecurityScanFinished(
                key=request.info.key, verdict=report.scan_verdict, detail=report.scan_detail
            )
        )
        if report.error is not None:
            return self._quarantine(request, transfer, report)
        if may_publish is not None and not await may_publish():
            transfer.part.unlink(missing_ok=True)
            remove_control(transfer.ctl)
            raise CivitaiTuiError(
                FailureKind.CANCELLED,
                "another engine of the fleet holds this file now (this engine's lease "
                "lapsed); this copy was dropped, the other one is placed",
            )
        disk.move_into_place(transfer.part, transfer.final)
        remove_control(transfer.ctl)
        result = DownloadResult(
            "completed",
            transfer.final,
            bytes=transfer.size,
            fetched_bytes=transfer.fetched,
            sha256=report.sha256,
            verified=report.verified,
            connections=transfer.max_connections,
            retries=transfer.retries,
        )
        self.bus.publish(
            FileCompleted(
                file=transfer.file_info(),
                path=str(transfer.final),
                bytes=transfer.size,
                fetched_bytes=transfer.fetched,
                sha256=report.sha256,
                duration=time.monotonic() - started,
                connections=transfer.max_connections,
                retries=transfer.retries,
            )
        )
        if not report.verified:
            log.info("%s: unverified (no published hash)", transfer.name)
        return result

    def _quarantine(
        self, request: DownloadRequest, transfer: Transfer, report: VerifyReport
    ) -> DownloadResult:
        assert report.error is not None and transfer.name is not None
        note = QuarantineNote(
            reason=report.error.message,
            kind=str(report.error.kind),
            name=transfer.name,
            source=request.source.describe(),
            expected_sha256=request.sha256,
            actual_sha256=report.sha256,
            size=transfer.size,
        )
        where: Path | None
        try:
            where = quarantine(transfer.part, note, self.settings.verify.quarantine_base)
            kept = f"quarantined at {where}"
        except OSError as exc:  # a refused file never stays beside the models
            log.error("cannot quarantine %s: %s; deleting it", transfer.name, exc)
            transfer.part.unlink(missing_ok=True)
            where = None
            kept = f"it could not be quarantined ({exc.strerror or exc}) and was deleted"
        remove_control(transfer.ctl)
        error = CivitaiTuiError(
            report.error.kind, f"{report.error.message} ({kept})", status=report.error.status
        )
        result = self._failed(request, transfer, error, quarantined=where)
        result.sha256 = report.sha256
        return result

    def _failed(
        self,
        request: DownloadRequest,
        transfer: Transfer,
        error: CivitaiTuiError,
        quarantined: Path | None = None,
    ) -> DownloadResult:
        log.warning("%s failed (%s): %s", transfer.file_info().name, error.kind, error.message)
        self.bus.publish(
            FileFailed(
                file=transfer.file_info(),
                kind=str(error.kind),
                message=error.message,
                status=error.status,
                attempts=transfer.retries + 1,
                quarantined=str(quarantined) if quarantined else None,
            )
        )
        return DownloadResult(
            "failed",
            quarantined,
            bytes=transfer.size or 0,
            fetched_bytes=transfer.fetched,
            error=error,
            connections=transfer.max_connections,
            retries=transfer.retries,
            quarantined=quarantined,
        )


def unexpected(request: DownloadRequest, exc: Exception) -> CivitaiTuiError:
    """A failure nothing anticipated, as the file's reason (the traceback goes to the log)."""
    if isinstance(exc, OSError):
        where = Path(exc.filename) if exc.filename else request.dest_dir
        return disk.filesystem_error(where, exc)
    log.error("unexpected error for %s", request.info.name, exc_info=exc)
    return CivitaiTuiError(
        FailureKind.INTERNAL,
        f"unexpected {type(exc).__name__}: {exc or 'no detail'} (the log has the details; "
        "`civitai-tui retry` tries again)",
    )


def refuse_flagged(request: DownloadRequest) -> None:
    """CivitAI's own scan said "Danger": refuse before fetching a single byte."""
    flagged = [scan for scan in request.remote_scans if "danger" in scan.lower()]
    if flagged:
        raise CivitaiTuiError(
            FailureKind.UNSAFE,
            f"CivitAI's own scan flagged {request.info.name or 'this file'} as dangerous "
            f"({', '.join(flagged)}); it was not downloaded",
        )
