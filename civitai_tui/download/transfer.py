"""Moving one file's bytes into its ``.part``: first request, segmented connections, resume.

A :class:`Transfer` owns everything between "we have a source" and "every byte
of the ``.part`` is on disk": the run, its attempts and restarts (the file
changed on the server, or the server ignores ranges), the first ranged request
that tells size, validators and name, the segments and their connection workers
(work stealing, live-adjustable count, AIMD on 429/503), per-connection stall
detection, retries, progress events, the file-wide watchdog, and the running
SHA256 of the written prefix. Along aria2's seams, three parts are its own:
the signed link (``download/link.py``: resolved, reused, replaced once when
refused), the checkpoints of the control file (``download/checkpoint.py``) and
the slow-connection floor (``download/speed.SpeedCheck``, shared with the
worker threads' ``download/stream.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp

from civitai_tui.aio import wait_event
from civitai_tui.civitai.urls import REDIRECT_STATUSES, check_redirect
from civitai_tui.download import disk
from civitai_tui.download.checkpoint import Checkpointer
from civitai_tui.download.control import ControlState, control_path, remove_control
from civitai_tui.download.digest import PrefixHasher
from civitai_tui.download.link import SignedLink
from civitai_tui.download.naming import choose_filename
from civitai_tui.download.ranges import RangeSet, Segment, worth_stealing
from civitai_tui.download.request import DownloadRequest, Resolver, resolve_direct
from civitai_tui.download.responses import (
    check_content_type,
    check_encoding,
    check_length,
    check_partial,
    closed_unanswered,
    network_errors,
    protocol_error,
    sniff_body,
    status_error,
    strong_etag,
    unanswered_error,
    unsatisfied_total,
)
from civitai_tui.download.settings import DownloadSettings
from civitai_tui.download.speed import SpeedCheck, Throttle
from civitai_tui.download.stream import Answer, Outcome, RangeStream
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import EventBus, FileInfo, FileProgress, FileStarted, RetryScheduled
from civitai_tui.net.network import network_of
from civitai_tui.net.proxy import Proxy

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_REDIRECTS = 5
#: While the host's other connections moved bytes in the last ``FLOWING`` seconds, a
#: request unanswered after ``ANSWER_TTFB_FACTOR`` times the usual time to first byte
#: (at least ``ANSWER_FLOOR`` s) is a refusal: a server enforcing a connection limit by
#: leaving the extra requests hanging, found in seconds instead of the stall timeout.
FLOWING = 1.0
ANSWER_FLOOR = 2.0
ANSWER_TTFB_FACTOR = 10
#: A request unanswered this long (x TTFB, at least the floor) no longer counts as serving.
STUCK_FLOOR = 0.5
STUCK_TTFB_FACTOR = 3


class HostPool:
    """The running transfers by host: a host's budget (``settings.host_budget``) is the
    most connections all of its files may have open together (a server's limit is per
    client, not per file). In fleet mode ``settings.shared_budget`` grants this engine
    its part of a budget shared with other engines, and the pool keeps under both."""

    def __init__(self, settings: DownloadSettings) -> None:
        self.settings = settings
        self.transfers: set[Transfer] = set()
        self._first: Counter[str] = Counter()  # first requests in flight, by host
        #: Files whose first request waits for a slot: file key -> host.
        self.waiting: dict[str, str] = {}
        self._freed: asyncio.Event | None = None

    def _on(self, host: str) -> list[Transfer]:
        return [t for t in self.transfers if t._host() == host]

    def _used(self, host: str) -> int:
        return sum(t.connections for t in self._on(host)) + self._first[host]

    def answer_deadline(self, host: str, now: float) -> float | None:
        """Seconds a request to ``host`` may wait for its answer before it counts as
        refused; None while none of the host's connections moves bytes (then only the
        stall timeout applies)."""
        flowing = [t for t in self._on(host) if now - t._bytes_at < FLOWING]
        if not flowing:
            return None
        return max(ANSWER_FLOOR, ANSWER_TTFB_FACTOR * max(t._ttfb for t in flowing))

    def budget(self, host: str) -> int | None:
        """The most connections ``host`` may have now (None: no budget set)."""
        budget = self.settings.host_budget.get(host, self.settings.default_host_budget)
        shared = self.settings.shared_budget
        if shared is not None:
            granted = shared.granted(host)
            budget = granted if budget is None else min(budget, granted)
        return budget

    def room(self, host: str) -> int:
        """How many more connections ``host`` may have now (large: no budget set)."""
        budget = self.budget(host)
        if budget is None:
            return 1 << 30
        return budget - self._used(host)

    def hosts(self) -> set[str]:
        """The hosts of running transfers (those still resolving their link have none)."""
        return {host for t in self.transfers if (host := t._host())}

    def demand(self, host: str) -> tuple[int, int]:
        """``(in use, wanted)`` connections to ``host``: open now, and what its files
        would open under this engine's own budget (the optimizer's)."""
        want = sum(t.wanted_connections() for t in self._on(host))
        budget = self.settings.host_budget.get(host, self.settings.default_host_budget)
        return self._used(host), want if budget is None else min(want, budget)

    def reshare(self, host: str) -> None:
        """The shared grant of ``host`` changed: shed connections over it (every file
        keeps one), or let files open more."""
        over = -self.room(host)
        for transfer in sorted(self._on(host), key=lambda t: -t.connections):
            cut = max(0, min(over, transfer.connections - 1))
            transfer.set_shared_cap(transfer.connections - cut if cut else None)
            over -= cut
        self.freed(host)

    def freed(self, host: str) -> None:
        """A connection to ``host`` closed: let its files (the freer's too) take the slot."""
        for transfer in self._on(host):
            transfer._ensure_workers()
        if self._freed is not None:
            self._freed.set()
            self._freed = None

    @contextlib.asynccontextmanager
    async def first_request(self, host: str, key: str) -> AsyncIterator[None]:
        """Hold a slot of ``host``'s budget for file ``key``'s first request (waiting for
        one: ``waiting`` names it meanwhile)."""
        try:
            while self.room(host) <= 0:
                self.waiting[key] = host
                if self._freed is None:
                    self._freed = asyncio.Event()
                await self._freed.wait()
        finally:
            self.waiting.pop(key, None)
        self._first[host] += 1
        try:
            yield
        finally:
            self._first[host] -= 1


class Restart(Exception):
    """Start the transfer over: the file changed, or the server ignores ``Range``."""

    def __init__(self, reason: str, single_stream: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.single_stream = single_stream


#: The first request's answer, handed to the first connection: its segment, the
#: response, and the end (exclusive) of the bytes that response carries.
First = tuple[Segment, aiohttp.ClientResponse, int]


def part_path(dest_dir: Path, name: str, tag: str = "") -> Path:
    """Where ``name`` is written until it is verified; ``tag`` (a fleet engine's) gives each
    writer of a shared folder its own part file."""
    return dest_dir / (f"{name}.{tag}.part" if tag else f"{name}.part")


class Transfer:
    """Fetches one file into ``<dest_dir>/<name>.part``; ``run()`` returns when it is complete."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        request: DownloadRequest,
        settings: DownloadSettings,
        bus: EventBus,
        pool: HostPool | None = None,
        resolve: Resolver = resolve_direct,
        part_tag: str = "",
    ) -> None:
        self.session = session
        self.pool = pool
        self.part_tag = part_tag
        self.request = request
        self.settings = settings
        self.bus = bus
        self.key = request.info.key
        self.name: str | None = (
            choose_filename(request.filename, None, None, "") if request.filename else None
        )
        self.size: int | None = None
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.ranges: RangeSet | None = None
        self.fd: int | None = None
        self.hasher: PrefixHasher | None = None
        self.sha256: str | None = None
        self.single_stream = False
        #: Follow-up ranges go through worker threads (off after a redirect: aiohttp follows).
        self.threaded = True
        self.fetched = 0
        self.retries = 0
        self.max_connections = 0
        self.resumed_bytes = 0
        #: The storage URL: resolved from the source, reused, replaced once when refused.
        self.link = SignedLink(request.source, resolve)
        self._restarts = 0
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._busy: set[int] = set()  # workers whose last answer was 429/503
        self._next_wid = 0
        self._tg: asyncio.TaskGroup | None = None
        self._fatal: CivitaiTuiError | None = None
        self._to_stop = 0
        self._cap = 1 << 30  # connections that were served when refusals came (429/503)
        self._shared_cap = 1 << 30  # connections the fleet's shared host budget leaves
        self._wanted: int | None = None  # the host's count last applied by adjust()
        self._last_cut = 0.0
        self._sleeping = 0
        self._all_done = asyncio.Event()
        self._last_progress = 0.0
        self._bytes_at = -FLOWING  # when bytes last landed (loop time)
        #: Tasks whose request waits for its answer's headers -> when it was sent.
        self._asking: dict[asyncio.Task[Any] | None, float] = {}
        #: The minimum-progress floor: when its window began, the bytes fetched then, and
        #: the seconds excused since (our own speed limits and retry waits: no slow server).
        self._floor_since = 0.0
        self._floor_fetched = 0
        self._excused = 0.0
        #: Saves progress to the control file (and loads an earlier run's).
        self.checkpoints = Checkpointer(self, settings)
        #: Smoothed file speed (B/s, the one progress reports) and time to a response's
        #: headers (s): what a split is judged by.
        self._speed = 0.0
        self._ttfb = 0.0
        #: The speed limits this file's bytes count against (overall, its job's).
        self._throttle = Throttle(settings.speed.limiters(request.info.job_id))

    # ----------------------------------------------------------------- paths
    @property
    def part(self) -> Path:
        assert self.name is not None
        return part_path(self.request.dest_dir, self.name, self.part_tag)

    @property
    def final(self) -> Path:
        assert self.name is not None
        return self.request.dest_dir / self.name

    @property
    def ctl(self) -> Path:
        return control_path(self.part)

    # ------------------------------------------------------------- lifecycle
    async def run(self) -> None:
        """Fetch until the ``.part`` is complete, fsynced and hashed (``self.sha256``)."""
        try:
            while True:
                try:
                    await self._attempt()
                    break
                except Restart as restart:
                    await self._restart(restart)
            self._publish_progress(0.0)  # the final 100 %, however short the transfer
            await asyncio.to_thread(os.fsync, self.fd)
            assert self.size is not None
            if self.hasher is not None:
                self.sha256 = await self.hasher.finish(self.size)
        except BaseException:
            self.checkpoints.save_final()
            raise
        finally:
            await self._close()

    async def _close(self) -> None:
        if self.hasher is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(self.hasher.wait())
        with self.checkpoints.lock:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None

    def adjust(self) -> None:
        """Apply a changed ``settings.connections`` now: add workers or stop extra ones.

        A new count for this file's host lifts the cut made after refusals (the
        optimizer has taken them into account; the host's budget in the ``pool``
        keeps files that hand connections to each other under the host's limit).
        """
        wanted = self.settings.host_connections.get(self._host())
        if wanted is not None and wanted != self._wanted:
            self._wanted, self._cap = wanted, 1 << 30
        excess = max(0, len(self._workers) - self._limit())
        # Connections still waiting for an answer go first, at once (a server that
        # hangs the ones over its limit would otherwise refuse them again, late).
        for task in [t for t in self._workers.values() if t in self._asking][:excess]:
            task.cancel()
            excess -= 1
        self._to_stop = excess
        self._ensure_workers()

    def _limit(self) -> int:
        return max(1, min(self.wanted_connections(), self._shared_cap))

    def wanted_connections(self) -> int:
        """Connections this file would use under this engine's own limits."""
        if self.single_stream:
            return 1
        wanted = self.settings.host_connections.get(self._host(), self.settings.connections)
        return max(1, min(wanted, self._cap))

    def set_shared_cap(self, cap: int | None) -> None:
        """At most ``cap`` connections while the fleet's grant for the host is short
        (None: no such cap); extra ones stop at once."""
        self._shared_cap = 1 << 30 if cap is None else max(1, cap)
        self.adjust()

    @property
    def connections(self) -> int:
        """Connections (workers) open now."""
        return len(self._workers)

    def _host(self) -> str:
        """The storage host (what connection budgets go by)."""
        return self.link.host()

    def _route(self) -> tuple[str, Proxy | None]:
        """The storage host and the proxy its requests take (for error messages)."""
        return self.link.route(self.session)

    # --------------------------------------------------------------- attempt
    async def _attempt(self) -> None:
        loop = asyncio.get_running_loop()
        first = await self._first_with_retry()
        assert self.ranges is not None
        if self.ranges.complete:
            return
        self._last_progress = self._floor_since = loop.time()
        self._floor_fetched, self._excused = self.fetched, 0.0
        self.checkpoints.begin(loop.time())
        self._all_done = asyncio.Event()
        ticker = asyncio.create_task(self._tick())
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                if first is not None:
                    self._spawn(*first)
                self._ensure_workers()
        except BaseExceptionGroup as group:
            raise _pick(group) from None
        finally:
            self._tg = None
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        if self._fatal is not None:
            raise self._fatal
        if not self.ranges.complete:
            raise protocol_error("the connections stopped before the file was complete")

    async def _restart(self, restart: Restart) -> None:
        self._restarts += 1
        if self._restarts > self.settings.max_restarts:
            raise CivitaiTuiError(
                FailureKind.PROTOCOL,
                f"gave up after {self._restarts - 1} restarts: {restart.reason}",
            )
        log.info("restarting %s: %s", self.name, restart.reason)
        self.bus.publish(
            RetryScheduled(key=self.key, attempt=self._restarts, delay=0.0, reason=restart.reason)
        )
        if self.hasher is not None:
            await self.hasher.wait()
            self.hasher = None
        self.ranges = None
        if restart.single_stream:
            self.single_stream = True
        else:
            self.size = self.etag = self.last_modified = None
        if self.name is not None:
            remove_control(self.ctl)

    # --------------------------------------------------------- first request
    async def _first_with_retry(self) -> First | None:
        attempt = 0
        while True:
            try:
                return await self._first_request()
            except CivitaiTuiError as err:
                attempt += 1
                await self._after_error(err, attempt)

    async def _first_request(self) -> First | None:
        control = self.checkpoints.load() if self.name and self.ranges is None else None
        if control is not None:
            self._adopt(control)
        if self.ranges is not None and self.ranges.complete:
            await self._prepare_disk()
            self.bus.publish(FileStarted(file=self.file_info(), resumed_bytes=self.resumed_bytes))
            return None
        async with self._first_slot():
            return await self._first_answer(control is not None)

    @contextlib.asynccontextmanager
    async def _first_slot(self) -> AsyncIterator[None]:
        """A slot of the host's budget for the first request (held until its worker runs)."""
        if self.pool is None:
            yield
            return
        await self.link.url()
        async with self.pool.first_request(self._host(), self.key):
            yield

    async def _first_answer(self, conditional: bool) -> First | None:
        start, end = self._first_span()
        stall = self.settings.stall_timeout
        with network_errors(stall, self._route):
            async with asyncio.timeout(stall):
                resp = await self._answered(self._send(start, end, conditional=conditional))
        try:
            if resp.status == 200 and not self.single_stream:
                if conditional:
                    raise Restart("the file changed on the server since the last run")
                self.single_stream = True
                self.ranges = None
            size = self._size_from(resp, start, end)
            self._learn(resp, size)
            await self._prepare_disk()
            assert self.ranges is not None
            self.bus.publish(
                FileStarted(file=self.file_info(str(resp.url)), resumed_bytes=self.resumed_bytes)
            )
            seg = self._claim(start, end)
        except BaseException:
            resp.close()
            raise
        self.ranges.split_free(self._limit() - (1 if seg is not None else 0))
        if seg is None:
            resp.close()
            return None
        return seg, resp, min(end, self.size) if not self.single_stream else self.size

    def _first_span(self) -> tuple[int, int]:
        if self.ranges is not None:
            missing = self.ranges.first_missing()
            assert missing is not None
            return missing
        if self.single_stream and self.size is not None:
            return 0, self.size
        expected = self.request.expected_size
        probe = self.settings.min_split
        if expected:
            probe = max(probe, -(-expected // max(1, self.settings.connections)))
        return 0, probe

    def _size_from(self, resp: aiohttp.ClientResponse, start: int, end: int) -> int:
        if resp.status == 206:
            cr = check_partial(resp.headers, start, end, self.size)
            if cr.total is None:
                raise protocol_error("the server did not say how big the file is")
            return cr.total
        length = resp.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise protocol_error("the server did not send the file's size (Content-Length)")
        size = int(length)
        if self.size is not None and size != self.size:
            raise Restart(f"the file is now {size} bytes, it was {self.size}")
        return size

    def _learn(self, resp: aiohttp.ClientResponse, size: int) -> None:
        etag, modified = strong_etag(resp.headers), resp.headers.get("Last-Modified")
        if self.ranges is not None and (etag, modified) != (self.etag, self.last_modified):
            raise Restart("the file changed on the server since the last run")
        self.size, self.etag, self.last_modified = size, etag, modified
        expected = self.request.expected_size
        if expected is not None and expected != size:
            raise CivitaiTuiError(
                FailureKind.SIZE_MISMATCH,
                f"the server's file is {size} bytes but CivitAI lists {expected}: "
                "not downloading a file that does not match its listing",
            )
        if self.name is None:
            resolved = self.link.resolved
            self.name = choose_filename(
                None,
                resp.headers.get("Content-Disposition"),
                resolved.filename if resolved else None,
                str(resp.url),
            )
            control = self.checkpoints.load()
            if control is not None and (control.size, control.etag, control.last_modified) == (
                size,
                etag,
                modified,
            ):
                self._adopt(control)
        if self.ranges is None:
            self.ranges = RangeSet(size, self.settings.min_split)

    def _adopt(self, control: ControlState) -> None:
        self.size, self.etag, self.last_modified = (
            control.size,
            control.etag,
            control.last_modified,
        )
        self.ranges = RangeSet(control.size, self.settings.min_split, control.done)
        self.resumed_bytes = self.ranges.done_bytes
        self.link.adopt(control.url, control.url_expires_at)

    def _claim(self, start: int, end: int) -> Segment | None:
        assert self.ranges is not None and self.size is not None
        if self.single_stream:
            end = self.size  # the answer is the whole file
        try:
            return self.ranges.claim(start, min(end, self.size), self._take_wid())
        except ValueError:
            return None

    async def _prepare_disk(self) -> None:
        assert self.size is not None and self.ranges is not None
        dest = self.request.dest_dir
        if self.fd is None:
            self.fd = disk.open_part(self.part, resume=self.ranges.done_bytes > 0)
        stat = os.fstat(self.fd)
        if self.ranges.done_bytes and stat.st_size == self.size:
            allocated = stat.st_blocks * 512
        else:
            if self.ranges.done_bytes:
                log.info("%s does not match its resume state: starting from zero", self.part)
                self.ranges = RangeSet(self.size, self.settings.min_split)
            self.resumed_bytes = 0
            os.ftruncate(self.fd, 0)
            allocated = 0
        disk.check_free_space(
            dest,
            max(0, self.size - allocated),
            self.settings.min_free_space,
            self.name or "the file",
            partial=allocated > 0,
        )
        await asyncio.to_thread(disk.preallocate, self.fd, self.size, self.part)
        self.hasher = self._new_hasher()

    # ----------------------------------------------------------------- HTTP
    async def _send(
        self, start: int, end: int, *, conditional: bool, close: bool = False
    ) -> aiohttp.ClientResponse:
        """A validated 200/206 response for ``[start, end)``; errors raise.

        ``close`` asks the server to close the connection afterwards: after a 429/503
        this sheds idle pooled connections that a per-connection limit may count.
        """
        headers = self._range_headers(start, end, conditional=conditional, close=close)
        while True:
            url = await self.link.url()
            resp = await self._get(url, headers)
            if await self.link.refused(url, resp.status, self.name):
                resp.release()
                continue
            try:
                return self._check_status(resp)
            except BaseException:
                resp.close()
                raise

    def _range_headers(
        self, start: int, end: int, *, conditional: bool, close: bool
    ) -> dict[str, str]:
        headers: dict[str, str] = {"Connection": "close"} if close else {}
        if not self.single_stream:
            headers["Range"] = f"bytes={start}-{end - 1}"
            validator = self.etag or self.last_modified
            if conditional and validator:
                headers["If-Range"] = validator
        return headers

    def _check_status(self, resp: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
        self._check_answer(resp.status, resp.headers, str(resp.url))
        return resp

    def _check_answer(self, status: int, headers: Mapping[str, str], url: str) -> None:
        where = urlsplit(url).hostname or "the storage server"
        if status == 416:
            total = unsatisfied_total(headers.get("Content-Range"))
            if total is not None and total != self.size:
                raise Restart(f"the file is now {total} bytes, it was {self.size}")
            raise protocol_error(f"{where} refused the byte range (HTTP 416)", 416)
        if status not in (200, 206):
            raise status_error(status, headers, where)
        if status == 206 and self.single_stream:
            raise protocol_error(f"{where} sent a partial answer to a request for the whole file")
        check_encoding(headers)
        check_content_type(headers)

    async def _get(self, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        loop = asyncio.get_running_loop()
        for _ in range(MAX_REDIRECTS + 1):
            sent = loop.time()
            resp = await self.session.get(
                url,
                headers=headers,
                allow_redirects=False,
                read_bufsize=self.settings.buffer_size,
            )
            if resp.status not in REDIRECT_STATUSES:
                self._note_ttfb(loop.time() - sent)
                return resp
            location = resp.headers.get("Location", "")
            resp.release()
            url = check_redirect(url, location)
        raise protocol_error(f"more than {MAX_REDIRECTS} redirects")

    # --------------------------------------------------------------- workers
    def _take_wid(self) -> int:
        self._next_wid += 1
        return self._next_wid

    def _spawn(
        self, seg: Segment, resp: aiohttp.ClientResponse | None = None, resp_end: int = 0
    ) -> bool:
        """Start a worker on ``seg``; False when the task group no longer takes work."""
        assert self._tg is not None and self.ranges is not None
        wid = seg.owner
        assert wid is not None
        worker = self._worker(wid, seg, resp, resp_end)
        try:
            self._workers[wid] = self._tg.create_task(worker)
        except RuntimeError:  # shutting down (cancel, pause, a fatal error): the range waits
            worker.close()
            self.ranges.release(seg)
            if resp is not None:
                resp.close()
            return False
        self.max_connections = max(self.max_connections, len(self._workers))
        return True

    def _ensure_workers(self) -> None:
        if self._tg is None or self._fatal is not None or self.ranges is None:
            return
        while len(self._workers) < self._limit() and (
            self.pool is None or self.pool.room(self._host()) > 0
        ):
            seg = self.ranges.next_range(self._take_wid(), self._steal_least())
            if seg is None or not self._spawn(seg):
                return

    def _steal_least(self) -> int:
        assert self.ranges is not None
        return worth_stealing(self._speed / max(1, self.ranges.owners), self._ttfb)

    def _over_limit(self) -> bool:
        """At a segment boundary: is this connection one too many? (Connections still
        waiting for an answer go first: they may never get one.)"""
        if len(self._workers) - len(self._asking) > self._limit():
            self._to_stop = max(0, self._to_stop - 1)
            return True
        return False

    def _stop_now(self) -> bool:
        """Mid-transfer: take one of the pending "stop a connection" tokens, if any."""
        if self._to_stop > 0 and len(self._workers) > self._limit():
            self._to_stop -= 1
            return True
        return False

    async def _worker(
        self, wid: int, seg: Segment, resp: aiohttp.ClientResponse | None, resp_end: int
    ) -> None:
        assert self.ranges is not None
        attempt = 0
        stream = RangeStream(
            self.settings.stall_timeout,
            self.settings.buffer_size,
            self.settings.zero_copy,
            network_of(self.session),
        )
        try:
            while True:
                before = seg.pos
                try:
                    stopped = await self._fetch(seg, resp, resp_end, stream)
                    if self.ranges.complete:
                        self._all_done.set()  # wake connections waiting to retry
                    attempt = 0
                    self._busy.discard(wid)
                    self._grow_cap()
                except CivitaiTuiError as err:
                    # A trickle is no progress: only a real amount resets the attempt count.
                    progressed = seg.pos - before >= self._meaningful_progress()
                    attempt = 1 if progressed else attempt + 1
                    self.ranges.release(seg)
                    if err.kind is FailureKind.RATE_LIMITED:
                        self._busy.add(wid)
                    stopped = await self._after_error(err, attempt, progressed)
                    stopped = stopped or self._over_limit()
                resp = None
                if stopped or self._over_limit():
                    break
                next_seg = self.ranges.next_range(wid, self._steal_least())
                if next_seg is None:
                    break
                seg = next_seg
        finally:
            stream.close()  # no call runs here: run() waits for its thread
            if seg.owner == wid:
                self.ranges.release(seg)
            self._workers.pop(wid, None)
        if self.pool is not None:
            self.pool.freed(self._host())  # another file on the host may take the slot
        else:
            self._ensure_workers()

    async def _after_error(
        self, err: CivitaiTuiError, attempt: int, progressed: bool = False
    ) -> bool:
        """Wait before the retry; True (at once) when a refused connection is one too many
        (its range goes to another: sleeping here would hold a worker that serves nothing)."""
        policy = self.settings.retry
        if not policy.should_retry(err, attempt):
            raise err
        loop = asyncio.get_running_loop()
        cut = _refusal(err) and self.ranges is not None
        if cut:
            # Sit at the connections still served (each refusal has released its range).
            self._cap = max(1, min(self._cap, self._serving()))
            self._last_cut = loop.time()
        delay = policy.delay(attempt, err.retry_after, progressed)
        self.retries += 1
        self.bus.publish(
            RetryScheduled(
                key=self.key, attempt=attempt, delay=delay, reason=err.message, status=err.status
            )
        )
        log.info("%s: %s; retry %d in %.1f s", self.name, err.message, attempt, delay)
        if cut and self._workers and self._over_limit():
            return True
        self._sleeping += 1
        slept = loop.time()
        try:
            await wait_event(self._all_done, delay)
        finally:
            self._sleeping -= 1
            self._last_progress = loop.time()
            self._excused += (loop.time() - slept) / max(1, len(self._workers))
        return False

    def _grow_cap(self) -> None:
        """A served request: after 5 s without refusals, one more connection up to the count
        wanted for this file (then no cut at all)."""
        wanted = self.settings.host_connections.get(self._host(), self.settings.connections)
        if self._cap < wanted:
            if asyncio.get_running_loop().time() - self._last_cut > 5.0:
                self._cap += 1
                self._ensure_workers()
        else:
            self._cap = 1 << 30

    async def _fetch(
        self,
        seg: Segment,
        resp: aiohttp.ClientResponse | None,
        resp_end: int,
        stream: RangeStream,
    ) -> bool:
        """Fill ``seg`` (re-requesting as needed); True if told to stop early.

        The first answer comes through aiohttp; follow-up requests go through
        ``stream`` (a worker thread) unless the file is read as one stream or
        the storage redirects. Network trouble raises :class:`CivitaiTuiError`.
        """
        assert self.ranges is not None
        stall = self.settings.stall_timeout
        if self.single_stream and seg.pos != seg.start:
            await self._rewind(seg)
        try:
            with network_errors(stall, self._route):
                async with asyncio.timeout(stall) as deadline:
                    while not seg.finished:
                        if resp is None and self.threaded and not self.single_stream:
                            outcome = await self._fetch_in_thread(stream, seg, deadline)
                            if outcome is Outcome.STOPPED and self._stop_now():
                                return True
                            continue
                        if resp is None:
                            start, resp_end = seg.pos, seg.end
                            resp = await self._send(
                                start, resp_end, conditional=True, close=seg.owner in self._busy
                            )
                            self._check_followup(resp.status, resp.headers, start, resp_end)
                        stopped = await self._pump(resp, seg, resp_end, deadline)
                        resp = None
                        if stopped:
                            return True
            return False
        finally:
            if resp is not None:
                resp.close()

    async def _fetch_in_thread(
        self, stream: RangeStream, seg: Segment, deadline: asyncio.Timeout
    ) -> Outcome:
        """One request for the rest of ``seg``, its body written by a worker thread."""
        assert self.fd is not None
        start, end = seg.pos, seg.end
        if not await self._ask_in_thread(stream, start, end, close=seg.owner in self._busy):
            return Outcome.DONE  # a redirect: the aiohttp path takes over
        loop = asyncio.get_running_loop()

        def landed(nbytes: int) -> None:  # on the worker thread
            loop.call_soon_threadsafe(self._landed, seg, nbytes, deadline)

        return await stream.run(
            partial(
                stream.pump,
                self.fd,
                seg,
                start,
                min(end, self.size or end),
                where=self.part,
                landed=landed,
                stop_wanted=lambda: self._to_stop > 0,
                min_speed=self.settings.min_speed,
                window=self.settings.min_speed_window,
                throttle=self._throttle,
            )
        )

    async def _ask_in_thread(self, stream: RangeStream, start: int, end: int, close: bool) -> bool:
        """Send the request for ``[start, end)`` on ``stream`` and check its answer.

        False after a redirect (threads are off for this file from then on).
        """
        headers = self._range_headers(start, end, conditional=True, close=close)
        while True:
            url = await self.link.url()
            answer = await self._answered(stream.run(partial(stream.request, url, headers)))
            self._observe(answer)
            try:
                if answer.status in REDIRECT_STATUSES:
                    self.threaded = False
                    stream.close()
                    return False
                if await self.link.refused(url, answer.status, self.name):
                    stream.close()
                    continue
                self._check_answer(answer.status, answer.headers, url)
                self._check_followup(answer.status, answer.headers, start, end)
                return True
            except BaseException:
                stream.close()  # an answer that is not written: its body stays unread
                raise

    async def _answered(self, request: Awaitable[T]) -> T:
        """``request`` (until its answer's headers), refused when it outwaits
        ``HostPool.answer_deadline`` (a hung request is aborted by the cancellation).

        While it waits it is not a connection that serves: progress and the cut after
        refusals count only connections with an answer."""
        now = asyncio.get_running_loop().time()
        wait = self.pool.answer_deadline(self._host(), now) if self.pool else None
        deadline = asyncio.timeout(wait)
        task = asyncio.current_task()
        self._asking[task] = now
        try:
            async with deadline:
                return await request
        except TimeoutError:
            if wait is not None and deadline.expired():
                raise unanswered_error(wait) from None
            raise
        finally:
            self._asking.pop(task, None)

    def _observe(self, answer: Answer) -> None:
        """Note an answer's time to first byte; tell the settings' observer (the optimizer)."""
        self._note_ttfb(answer.ttfb)
        observer = self.settings.stream_observer
        if observer is not None:
            host = urlsplit(answer.url).hostname or ""
            observer(host, answer.ttfb, answer.new_connection)

    def _note_ttfb(self, seconds: float) -> None:
        self._ttfb = _smoothed(self._ttfb, seconds)

    def _landed(self, seg: Segment, nbytes: int, deadline: asyncio.Timeout) -> None:
        """On the loop: ``nbytes`` from a worker thread are on disk at ``seg.pos``."""
        assert self.ranges is not None
        # A connection that stole part of this segment may have shrunk it meanwhile;
        # bytes past its end are the thief's to write and count (the same bytes).
        useful = max(0, min(nbytes, seg.end - seg.pos))
        self.ranges.advance(seg, useful)
        self.fetched += useful
        now = self._last_progress = self._bytes_at = asyncio.get_running_loop().time()
        if not deadline.expired():  # a report may arrive while the timeout fires
            deadline.reschedule(now + self.settings.stall_timeout)

    def _check_followup(
        self, status: int, headers: Mapping[str, str], start: int, end: int
    ) -> None:
        """A later request's answer: a 200 to a ranged request means restart."""
        if status == 200 and not self.single_stream:
            raise self._restart_for(headers)
        if status == 206:
            check_partial(headers, start, end, self.size)
        else:
            check_length(headers, self.size or 0)

    def _restart_for(self, headers: Mapping[str, str]) -> Restart:
        etag, modified = strong_etag(headers), headers.get("Last-Modified")
        if (etag, modified) != (self.etag, self.last_modified):
            return Restart("the file changed on the server during the download")
        return Restart("the server ignores byte ranges: using one connection", single_stream=True)

    def _new_hasher(self) -> PrefixHasher | None:
        """A running SHA256 when there is a published one to check (or it is asked for)."""
        assert self.fd is not None
        if self.request.sha256 or self.settings.hash_unpublished:
            return PrefixHasher(self.fd)
        return None

    async def _rewind(self, seg: Segment) -> None:
        assert self.ranges is not None and self.fd is not None
        self.ranges.rewind(seg)
        if self.hasher is not None:
            await self.hasher.wait()
        self.hasher = self._new_hasher()

    async def _pump(
        self,
        resp: aiohttp.ClientResponse,
        seg: Segment,
        resp_end: int,
        deadline: asyncio.Timeout,
    ) -> bool:
        """Write the body of ``resp`` at ``seg.pos`` until the segment (or body) ends.

        Returns True when the connection was told to stop (fewer connections wanted).
        """
        assert self.ranges is not None and self.fd is not None
        loop = asyncio.get_running_loop()
        fd, where, ranges = self.fd, self.part, self.ranges
        stall = self.settings.stall_timeout
        body_end = min(resp_end, self.size or resp_end)
        next_push = loop.time()
        speed = SpeedCheck(self.settings.min_speed, self.settings.min_speed_window, next_push)
        complete = stopped = False
        try:
            async for chunk in resp.content.iter_any():
                room = seg.end - seg.pos
                if seg.pos == 0:
                    sniff_body(chunk)
                view = memoryview(chunk)[:room]
                disk.pwrite_all(fd, view, seg.pos, where)
                ranges.advance(seg, len(view))
                self.fetched += len(view)
                wait = self._throttle(len(view))
                if wait > 0:
                    await asyncio.sleep(wait)
                    speed.paused(wait)  # our own limit is not a slow server
                    self._excused += wait
                now = self._last_progress = self._bytes_at = loop.time()
                if now >= next_push:
                    deadline.reschedule(now + stall)
                    next_push = now + 0.5
                speed.add(len(view), now)
                if seg.pos >= body_end or seg.finished:
                    break
                if self._stop_now():
                    stopped = True
                    break
            complete = seg.pos >= body_end
            if not (complete or seg.finished or stopped):
                raise CivitaiTuiError(
                    FailureKind.NETWORK, "the server ended the response before the range was sent"
                )
            return stopped
        finally:
            # Worker threads fetch the rest: an idle pooled connection would only
            # count against a server's per-client connection limit.
            threads_next = self.threaded and not self.single_stream
            if complete and resp.content.at_eof() and not threads_next:
                resp.release()
            else:
                resp.close()

    # ----------------------------------------------- ticker: progress, checkpoints, watchdog
    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.progress_interval
        last_time, last_fetched = loop.time(), self.fetched
        while True:
            await asyncio.sleep(interval)
            assert self.ranges is not None
            now = loop.time()
            inst = (self.fetched - last_fetched) / max(now - last_time, 1e-6)
            self._speed = _smoothed(self._speed, inst)
            last_time, last_fetched = now, self.fetched
            self._publish_progress(self._speed)
            if self.hasher is not None:
                self.hasher.follow(self.ranges.contiguous_prefix())
            self.checkpoints.tick(now, self.fetched)
            self._watchdog(now)

    def _publish_progress(self, speed: float) -> None:
        assert self.ranges is not None
        self.bus.publish(
            FileProgress(
                key=self.key,
                done=self.ranges.done_bytes,
                total=self.size,
                speed=speed,
                connections=self.ranges.owners,
                serving=self._serving(),
                stuck=self._stuck(),
            )
        )

    def _serving(self) -> int:
        """Connections with an answer (those still asking may never get one)."""
        assert self.ranges is not None
        return max(0, self.ranges.owners - len(self._asking))

    def _stuck(self) -> int:
        """Requests waiting for an answer longer than a request takes here
        (``STUCK_TTFB_FACTOR`` x the usual time to first byte, at least ``STUCK_FLOOR`` s)."""
        wait = max(STUCK_FLOOR, STUCK_TTFB_FACTOR * self._ttfb)
        since = asyncio.get_running_loop().time() - wait
        return sum(1 for asked in self._asking.values() if asked < since)

    def control_state(self) -> ControlState | None:
        """The progress a checkpoint saves; None while there is nothing to resume from."""
        if self.ranges is None or self.single_stream:
            return None
        resolved = self.link.resolved
        return ControlState(
            size=self.ranges.size,
            etag=self.etag,
            last_modified=self.last_modified,
            url=resolved.url if resolved else None,
            url_expires_at=resolved.expires_at if resolved else None,
            done=self.ranges.finished_spans(),
        )

    def _meaningful_progress(self) -> int:
        """Bytes a connection must gain for its failure to count as progress."""
        return max(1, int(self.settings.min_speed * self.settings.min_speed_window))

    def _watchdog(self, now: float) -> None:
        """Fail the file when it stops, or when it gains less than ``min_speed`` B/s over
        ``file_stall_timeout`` (a server trickling a byte now and then resets no timer)."""
        limit, floor = self.settings.file_stall_timeout, self.settings.min_speed
        if self._sleeping or self._fatal is not None:
            return
        elapsed = now - self._floor_since - self._excused
        gained = self.fetched - self._floor_fetched
        if now - self._last_progress >= limit:
            message = f"no progress on the whole file for {limit:g} s"
        elif floor and elapsed >= limit and gained < floor * elapsed:
            message = (
                f"the whole file gained only {gained} bytes in {elapsed:.0f} s (under "
                f"{floor} B/s): the server trickles; try again later or another mirror"
            )
        else:
            if elapsed >= limit:
                self._floor_since, self._floor_fetched, self._excused = now, self.fetched, 0.0
            return
        self._fatal = CivitaiTuiError(FailureKind.STALLED, message)
        for task in self._workers.values():
            task.cancel()

    def file_info(self, url: str | None = None) -> FileInfo:
        """The request's file info with what the server told us (name, size, host)."""
        url = url or (self.link.resolved.url if self.link.resolved else "")
        return replace(
            self.request.info,
            name=self.name or self.request.info.name,
            size=self.size,
            host=urlsplit(url).hostname or "",
        )


def _refusal(err: CivitaiTuiError) -> bool:
    """A request the server refused: 429/503, or a connection closed before any answer."""
    return err.kind is FailureKind.RATE_LIMITED or (
        err.status is None and closed_unanswered(err.message)
    )


def _smoothed(old: float, new: float) -> float:
    """An exponential moving average (weight 0.3 on the new value; the first value as is)."""
    return new if old == 0 else 0.3 * new + 0.7 * old


def _pick(group: BaseExceptionGroup) -> BaseException:
    """The exception that matters most in a task group's failure."""
    flat: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            flat.append(exc)

    walk(group)
    for kind in (Restart, CivitaiTuiError):
        for exc in flat:
            if isinstance(exc, kind):
                return exc
    return flat[0]
