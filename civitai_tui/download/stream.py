"""The fast path for segment bytes: a blocking keep-alive connection in a worker thread.

One event loop moving every byte through aiohttp tops out near one core (recv,
parse, ``pwrite`` all on the loop). A :class:`RangeStream` fetches a segment's
follow-up ranges with ``http.client`` in a worker thread instead: ``readinto1``
into a reused buffer and ``os.pwrite`` at the offset, both releasing the GIL,
so the connections of all files spread over every core, as curl and aria2 do.
The loop stays in charge of the segments: the thread reports "n bytes landed"
(``call_soon_threadsafe``), stops when its segment shrinks (stolen) or fewer
connections are wanted, and the loop validates every answer with the same
checks as the aiohttp path.

Ownership of the connection is strict. While a call runs (:meth:`RangeStream.run`)
only its thread touches the connection, the response and the socket; the loop
may only :meth:`~RangeStream.abort`, which shuts the TCP connection down through
a duplicate descriptor that the stream alone owns (never the connection's own
fd, which ``http.client`` may close and the kernel reuse at any moment). A
cancelled ``run`` returns only after the thread has let go. The loop closes the
stream only between calls.

Connections take the route of the session the stream serves (``net.network``):
direct; through an HTTP proxy (``CONNECT`` tunnel for https, absolute-form
requests for http, whose bodies are still spliced); or through a SOCKS proxy
(python-socks opens the tunnel). TLS is always verified with the network's
context (system CAs plus ``network.ca_bundle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from python_socks.sync import Proxy as SyncProxy

from civitai_tui.download import disk, splice
from civitai_tui.download.ranges import Segment
from civitai_tui.download.responses import sniff_body, stalled_error
from civitai_tui.download.session import USER_AGENT
from civitai_tui.download.speed import SpeedCheck, Throttle
from civitai_tui.download.tls_batch import TlsBatch
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.net.connector import SOCKS_ERRORS
from civitai_tui.net.failures import network_failure, through
from civitai_tui.net.network import Network, current
from civitai_tui.net.policy import checked_addrinfo, refusal
from civitai_tui.net.proxy import Proxy

T = TypeVar("T")

#: Threads for the streams of every download in the process (one per busy connection).
_EXECUTOR = ThreadPoolExecutor(max_workers=256, thread_name_prefix="range")
#: Written bytes are reported to the loop when this many have gathered, or this long
#: after the last report (each report wakes the loop; throughput must stay fresh).
REPORT_BYTES = 2 << 20
REPORT_SECONDS = 0.1
#: Written data is handed to the disk every this many bytes per connection, so the
#: fsync before the final rename has little left to write (it was ~0.4 s per GB).
WRITEBACK_BYTES = 8 << 20


class Outcome(Enum):
    DONE = "done"  # the body was written (the segment may still need more)
    STOPPED = "stopped"  # asked to stop: fewer connections wanted


@dataclass(frozen=True)
class Answer:
    """The status line and headers of one response, for the loop's checks."""

    status: int
    headers: Mapping[str, str]
    url: str
    ttfb: float  # seconds from sending the request to its response headers
    new_connection: bool  # a TCP connection was opened for this request


class Aborted(Exception):
    """The call was aborted from the loop (pause, cancel, timeout)."""


@contextlib.contextmanager
def _network_errors(timeout: float, host: str, proxy: Proxy | None) -> Iterator[None]:
    """Socket, proxy and ``http.client`` failures as :class:`CivitaiTuiError`."""
    try:
        yield
    except TimeoutError as exc:
        raise stalled_error(timeout) from exc
    except (OSError, http.client.HTTPException, *SOCKS_ERRORS) as exc:
        specific = refusal(exc) or network_failure(exc, host, proxy)
        if specific is not None:
            raise specific from exc
        raise CivitaiTuiError(
            FailureKind.NETWORK, f"network error{through(proxy)}: {exc or type(exc).__name__}"
        ) from exc


class RangeStream:
    """One keep-alive HTTP/1.1 connection, used by one worker thread at a time."""

    def __init__(
        self,
        timeout: float,
        buffer_size: int,
        zero_copy: bool = True,
        network: Network | None = None,
    ) -> None:
        self._network = network or current()
        self._proxy: Proxy | None = None  # the route of the current origin
        self._timeout = timeout
        self._buffer_size = buffer_size
        self._buffer: bytearray | None = None
        #: Plain-HTTP bodies go socket → pipe → file (``splice``) unless turned off.
        self._zero_copy = zero_copy and splice.available()
        self._pipe: splice.SplicePipe | None = None
        self._batch: TlsBatch | None = None  # TLS bodies: many records per pwrite
        self._unbuffered = False  # the response's read-ahead buffer has been emptied
        self._conn: http.client.HTTPConnection | None = None
        self._origin: tuple[str, str, int | None] | None = None
        self._resp: http.client.HTTPResponse | None = None
        self._connected = False  # the current request opened a connection
        self._aborted = threading.Event()
        self._wake_lock = threading.Lock()
        self._wake: socket.socket | None = None  # a dup of the connection's socket
        self._call: asyncio.Future[object] | None = None

    # ------------------------------------------------------------ loop side
    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (a blocking call of this stream) in a worker thread.

        On cancellation the call is aborted and awaited before ``CancelledError``
        propagates: when ``run`` returns or raises, no thread uses the stream.
        """
        if self._call is not None:
            raise RuntimeError("a call is already running on this stream")
        self._aborted.clear()
        future = asyncio.get_running_loop().run_in_executor(_EXECUTOR, fn)
        self._call = future
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            while not future.done():
                self.abort()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({future})
            if not future.cancelled():
                future.exception()  # retrieved: the cancellation is what matters
            raise
        finally:
            self._call = None

    def abort(self) -> None:
        """Make the running call stop as soon as possible (safe from any thread)."""
        self._aborted.set()
        with self._wake_lock:
            if self._wake is not None:
                with contextlib.suppress(OSError):
                    self._wake.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the connection; only between calls (a running call owns it)."""
        if self._call is not None:
            raise RuntimeError("cannot close a stream while a call is using it")
        self._drop()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    # ---------------------------------------------------------- thread side
    def request(self, url: str, headers: Mapping[str, str]) -> Answer:
        """Send a GET on the kept-alive connection (reconnecting when needed)."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname or "", parts.port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        if origin != self._origin:
            self._drop()
            self._origin = origin
            self._proxy = self._network.routes.for_url(url)
        if self._absolute_form():
            assert self._proxy is not None
            target = urlunsplit(parts._replace(fragment=""))
            if auth := self._proxy.authorization():
                sent["Proxy-Authorization"] = auth
        try:
            with _network_errors(self._timeout, parts.netloc.rsplit("@", 1)[-1], self._proxy):
                started = time.monotonic()
                self._send(target, sent)
                self._unbuffered = False
                resp = self._resp
                assert resp is not None
                return Answer(
                    resp.status, resp.headers, url, time.monotonic() - started, self._connected
                )
        except BaseException:
            self._drop()
            raise

    def pump(
        self,
        fd: int,
        seg: Segment,
        start: int,
        body_end: int,
        *,
        where: Path,
        landed: Callable[[int], None],
        stop_wanted: Callable[[], bool],
        min_speed: int,
        window: float,
        throttle: Throttle | None = None,
    ) -> Outcome:
        """Write the response body at ``start`` until ``body_end`` or ``seg``'s (moving) end.

        ``landed(n)`` is called with the bytes written since its last call; the
        connection is kept only when the whole body was read. ``throttle(n)`` (the
        speed limits) says how long to wait after ``n`` bytes landed.
        """
        resp = self._resp
        assert resp is not None and resp.fp is not None
        if self._buffer is None:
            self._buffer = bytearray(self._buffer_size)
        view = memoryview(self._buffer)
        report, speed = _Reporter(landed), SpeedCheck(min_speed, window)
        pos, outcome = start, Outcome.DONE
        flushed = start
        try:
            with _network_errors(self._timeout, self._where(), self._proxy):
                # seg.end may shrink meanwhile: another connection stole the tail.
                while pos < (stop_at := min(body_end, seg.end)):
                    if throttle is not None:
                        stop_at = min(stop_at, pos + throttle.quantum(stop_at - pos))
                    n = self._land(fd, resp, view, pos, stop_at, where)
                    if self._aborted.is_set():
                        raise Aborted
                    if not n:
                        raise CivitaiTuiError(
                            FailureKind.NETWORK,
                            "the server ended the response before the range was sent",
                        )
                    pos += n
                    if pos - flushed >= WRITEBACK_BYTES:
                        disk.start_writeback(fd, flushed, pos - flushed)
                        flushed = pos
                    report.add(n)
                    speed.add(n)
                    wait = throttle(n) if throttle is not None else 0.0
                    if wait > 0:
                        speed.paused(wait)  # our own limit is not a slow server
                        if self._aborted.wait(wait):
                            raise Aborted
                    if stop_wanted():
                        outcome = Outcome.STOPPED
                        break
        finally:
            report.flush()
            if pos >= body_end:
                self._release()
            else:
                self._drop()  # an unread body: the connection cannot be reused
        return outcome

    def _land(
        self,
        fd: int,
        resp: http.client.HTTPResponse,
        view: memoryview,
        pos: int,
        stop_at: int,
        where: Path,
    ) -> int:
        """Put the next bytes of the body at ``pos``; how many (0: the body ended early).

        The response's read-ahead buffer is copied out first; after it, a plain-HTTP
        body is spliced (``download.splice``), a TLS body read a batch of records at
        a time (:class:`TlsBatch`), anything else copied. A file's first bytes are
        always copied, to be sniffed (an HTML page where a file should be).
        """
        assert resp.fp is not None
        want = stop_at - pos
        pipe = self._splice_pipe() if pos else None
        if pipe is not None and self._unbuffered:
            try:
                return pipe.move(resp.fp.fileno(), fd, pos, want, self._timeout, where)
            except splice.Unsupported as unsupported:
                self._zero_copy = False
                disk.pwrite_all(fd, memoryview(unsupported.data), pos, where)
                return len(unsupported.data)
        batch = self._tls_batch() if pos else None
        if batch is not None and self._unbuffered:
            n = batch.read(view[: min(len(view), want)])
            disk.pwrite_all(fd, view[:n], pos, where)
            return n
        if pipe is not None or batch is not None:
            buffered = len(resp.fp.peek())  # copy out only this much: then splice / batch
            want = min(want, buffered)
            self._unbuffered = want == buffered
        # readinto1: what one recv gives (readinto waits to fill the buffer,
        # and loses a partial fill when the server then stalls).
        n = resp.fp.readinto1(view[: min(len(view), want)])
        if pos == 0 and n:
            sniff_body(bytes(view[: min(n, 64)]))
        disk.pwrite_all(fd, view[:n], pos, where)
        return n

    def _tls_batch(self) -> TlsBatch | None:
        conn = self._conn
        if conn is None or not isinstance(conn.sock, ssl.SSLSocket):
            return None
        if self._batch is None or self._batch.sock is not conn.sock:
            self._batch = TlsBatch(conn.sock)
        return self._batch

    def _splice_pipe(self) -> splice.SplicePipe | None:
        if not self._zero_copy or self._origin is None or self._origin[0] != "http":
            return None
        if self._pipe is None:
            self._pipe = splice.SplicePipe()
        return self._pipe

    def _send(self, target: str, headers: Mapping[str, str]) -> None:
        """The request and its response headers; one fresh try if a kept-alive socket died."""
        if self._aborted.is_set():
            raise Aborted
        if self._resp is not None:
            self._drop()  # an answer that was never read: the connection is in doubt
        reused = self._conn is not None and self._conn.sock is not None
        self._connected = False
        try:
            self._exchange(target, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused or self._aborted.is_set():
                raise
            self._drop()  # the server closed an idle kept-alive connection
            self._exchange(target, headers)
        if self._aborted.is_set():
            raise Aborted

    def _exchange(self, target: str, headers: Mapping[str, str]) -> None:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._new_connection()
        conn.request("GET", target, headers=dict(headers))
        self._resp = conn.getresponse()

    def _where(self) -> str:
        """``host:port`` of the origin, for error messages."""
        if self._origin is None:
            return "the storage server"
        _, host, port = self._origin
        return f"{host}:{port}" if port else host

    def _absolute_form(self) -> bool:
        """Requests go to an HTTP proxy as absolute URLs (http targets through an HTTP proxy)."""
        proxy, origin = self._proxy, self._origin
        return (
            proxy is not None and not proxy.is_socks and origin is not None and origin[0] == "http"
        )

    def _new_connection(self) -> http.client.HTTPConnection:
        """A connection to the origin, or to the HTTP proxy that forwards or tunnels to it."""
        assert self._origin is not None
        scheme, host, port = self._origin
        proxy = self._proxy
        via_http_proxy = proxy is not None and not proxy.is_socks
        peer_host, peer_port = (proxy.host, proxy.port) if via_http_proxy else (host, port)
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(
                peer_host, peer_port, timeout=self._timeout, context=self._network.tls
            )
            if via_http_proxy:
                auth = proxy.authorization()
                conn.set_tunnel(host, port, {"Proxy-Authorization": auth} if auth else None)
        else:
            conn = http.client.HTTPConnection(peer_host, peer_port, timeout=self._timeout)
        # Every socket the connection opens (also a reconnect after "Connection:
        # close") is watched, so that abort() can reach it.
        conn._create_connection = self._open_socket  # type: ignore[attr-defined]
        return conn

    def _open_socket(
        self,
        address: tuple[str, int],
        timeout: float,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        """``socket.create_connection``, with the socket watched before it connects.

        Through a SOCKS proxy, python-socks connects and opens the tunnel to
        ``address``; the socket is watched from then on.
        """
        if self._proxy is not None and self._proxy.is_socks:
            return self._open_socks(address, timeout)
        error: OSError | None = None
        # The target's addresses go through the URL policy; an HTTP proxy's are the user's.
        if self._proxy is not None:
            infos = socket.getaddrinfo(*address, 0, socket.SOCK_STREAM)
        else:
            infos = checked_addrinfo(*address)
        for family, kind, proto, _, addr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                self._watch(sock)
                if self._aborted.is_set():  # aborted before the socket could be shut down
                    raise Aborted
                sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(addr)  # an abort() shuts it down: the connect fails at once
            except BaseException as exc:
                self._unwatch()
                sock.close()
                if not isinstance(exc, OSError) or self._aborted.is_set():
                    raise
                error = exc
                continue
            self._connected = True
            return sock
        raise error or OSError(f"cannot resolve {address[0]}")

    def _open_socks(self, address: tuple[str, int], timeout: float) -> socket.socket:
        proxy = self._proxy
        assert proxy is not None
        sock = proxy.socks(SyncProxy).connect(address[0], address[1], timeout=timeout)
        self._watch(sock)
        if self._aborted.is_set():
            self._unwatch()
            sock.close()
            raise Aborted
        sock.settimeout(timeout)
        self._connected = True
        return sock

    def _watch(self, sock: socket.socket) -> None:
        wake = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
        with self._wake_lock:
            old, self._wake = self._wake, wake
        if old is not None:
            old.close()

    def _unwatch(self) -> None:
        with self._wake_lock:
            wake, self._wake = self._wake, None
        if wake is not None:
            wake.close()

    def _release(self) -> None:
        """The body was read to its end: the connection stays for the next request."""
        if self._resp is not None:
            self._resp.close()
            self._resp = None
        if self._conn is not None and self._conn.sock is None:
            self._drop()  # the server said "Connection: close"

    def _drop(self) -> None:
        """Close the response, the connection, the watch (the fd really closes) and the pipe."""
        self._unwatch()
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()
        self._batch = None
        resp, self._resp = self._resp, None
        if resp is not None:
            resp.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class _Reporter:
    """Batches ``landed`` calls: every ``REPORT_BYTES`` or ``REPORT_SECONDS``."""

    def __init__(self, landed: Callable[[int], None]) -> None:
        self._landed = landed
        self._pending = 0
        self._at = time.monotonic()

    def add(self, n: int) -> None:
        self._pending += n
        now = time.monotonic()
        if self._pending >= REPORT_BYTES or now - self._at >= REPORT_SECONDS:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self._pending:
            self._landed(self._pending)
            self._pending = 0
        self._at = now if now is not None else time.monotonic()
