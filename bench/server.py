"""The bench file server: Range-correct HTTP on 127.0.0.1, optionally capped per connection.

Uncapped, files go out through aiohttp's ``FileResponse`` (sendfile), so the
server costs little CPU. With ``--per-conn-rate`` every TCP connection gets its
own token bucket (kept across keep-alive requests) and bodies are written in
paced slices of an mmap'd file, like a CDN edge that limits each connection.

Run as its own process (``python -m bench.server --root DIR``) so it never
shares an event loop with the client under test; :class:`ServerProcess` starts
and stops it for the harness. The first stdout line is ``LISTENING <base-url>``.
"""

from __future__ import annotations

import argparse
import asyncio
import mmap
import select
import signal
import subprocess
import sys
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bench.pacing import TokenBucket, parse_rate, write_quantum

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

READY_PREFIX = "LISTENING "
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServedFile:
    """One file of the served directory, mapped into memory for paced writes."""

    path: Path
    size: int
    mtime: float
    etag: str
    view: memoryview


def _load_files(root: Path) -> dict[str, ServedFile]:
    files: dict[str, ServedFile] = {}
    for path in sorted(p for p in root.iterdir() if p.is_file() and p.stat().st_size > 0):
        st = path.stat()
        with path.open("rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        files[path.name] = ServedFile(
            path=path,
            size=st.st_size,
            mtime=st.st_mtime,
            etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",  # the same form FileResponse uses
            view=memoryview(mapped),
        )
    return files


def _range_applies(request: web.Request, served: ServedFile) -> bool:
    """RFC 9110 If-Range: honour Range only if the validator still matches."""
    raw = request.headers.get("If-Range")
    if raw is None:
        return True
    if raw.strip() == f'"{served.etag}"':
        return True
    when = request.if_range
    return when is not None and served.mtime <= when.timestamp()


def _byte_span(request: web.Request, served: ServedFile) -> tuple[int, int] | None:
    """``(start, end_exclusive)`` for a satisfiable Range, ``None`` for the whole file."""
    if "Range" not in request.headers or not _range_applies(request, served):
        return None
    unsatisfiable = web.HTTPRequestRangeNotSatisfiable(
        headers={"Content-Range": f"bytes */{served.size}"}
    )
    try:
        wanted = request.http_range
    except ValueError:
        raise unsatisfiable from None
    start = wanted.start if wanted.start >= 0 else max(0, served.size + wanted.start)
    end = served.size if wanted.stop is None else min(wanted.stop, served.size)
    if start >= served.size:
        raise unsatisfiable
    return start, end


class PacedFiles:
    """Serves the files at ``rate`` bytes/s per TCP connection."""

    def __init__(self, files: dict[str, ServedFile], rate: int) -> None:
        self._files = files
        self._rate = rate
        self._quantum = write_quantum(rate)
        self._buckets: weakref.WeakKeyDictionary[asyncio.BaseTransport, TokenBucket] = (
            weakref.WeakKeyDictionary()
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        served = _lookup(self._files, request)
        span = _byte_span(request, served)
        start, end = span or (0, served.size)
        response = web.StreamResponse(status=206 if span else 200)
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["Content-Type"] = "application/octet-stream"
        if span:
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{served.size}"
        response.etag = served.etag
        response.last_modified = datetime.fromtimestamp(served.mtime, UTC)
        response.content_length = end - start
        await response.prepare(request)
        try:
            if request.method != "HEAD":
                await self._send(request, response, served.view[start:end])
            await response.write_eof()
        except ConnectionError:
            pass  # the client hung up early, as aria2c does once a segment is complete
        return response

    async def _send(
        self, request: web.Request, response: web.StreamResponse, body: memoryview
    ) -> None:
        assert request.transport is not None  # set while the handler runs
        bucket = self._buckets.setdefault(
            request.transport, TokenBucket(rate=self._rate, capacity=self._quantum)
        )
        loop = asyncio.get_running_loop()
        for offset in range(0, len(body), self._quantum):
            piece = body[offset : offset + self._quantum]
            delay = bucket.reserve(len(piece), loop.time())
            if delay > 0:
                await asyncio.sleep(delay)
            await response.write(piece)


def _lookup(files: dict[str, ServedFile], request: web.Request) -> ServedFile:
    served = files.get(request.match_info["name"])
    if served is None:
        raise web.HTTPNotFound(text="no such bench file\n")
    return served


def _sendfile_handler(files: dict[str, ServedFile]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(_lookup(files, request).path)

    return handle


def make_app(root: Path, per_conn_rate: int | None) -> web.Application:
    """The aiohttp app serving every file of ``root`` under ``/files/<name>``."""
    files = _load_files(root)
    if not files:
        raise ValueError(f"nothing to serve in {root}")
    if per_conn_rate is None:
        handle = _sendfile_handler(files)
    else:
        handle = PacedFiles(files, per_conn_rate).handle
    app = web.Application()
    app.router.add_get("/files/{name}", handle)
    return app


async def _serve(root: Path, host: str, port: int, per_conn_rate: int | None) -> None:
    runner = web.AppRunner(make_app(root, per_conn_rate), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    print(f"{READY_PREFIX}http://{bound_host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="directory of files to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--per-conn-rate", type=parse_rate, default=None, help="cap each connection, e.g. 20MB"
    )
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.root, args.host, args.port, args.per_conn_rate))


class ServerProcess:
    """Starts ``bench.server`` in a child process and stops it (a context manager)."""

    def __init__(self, root: Path, per_conn_rate: str | None, *, start_timeout: float = 20) -> None:
        command = [sys.executable, "-m", "bench.server", "--root", str(root)]
        if per_conn_rate:
            command += ["--per-conn-rate", per_conn_rate]
        self._command = command
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    @property
    def pid(self) -> int:
        assert self._proc is not None, "server not started"
        return self._proc.pid

    def url(self, name: str) -> str:
        return f"{self.base_url}/files/{name}"

    def __enter__(self) -> ServerProcess:
        self._proc = subprocess.Popen(
            self._command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
        )
        try:
            self.base_url = self._read_ready_line()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _read_ready_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        readable, _, _ = select.select([self._proc.stdout], [], [], self._start_timeout)
        line = self._proc.stdout.readline() if readable else ""
        if not line.startswith(READY_PREFIX):
            raise RuntimeError(
                f"bench server did not start within {self._start_timeout:.0f} s "
                f"(exit code {self._proc.poll()}, first line {line!r})"
            )
        return line[len(READY_PREFIX) :].strip()

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


if __name__ == "__main__":
    main()
