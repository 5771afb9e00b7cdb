"""A hostile storage (and API) server for tests: raw sockets on loopback, one behaviour each.

``slowloris``: a valid 200 whose body trickles a byte every ``interval`` s;
``endless_headers``: header lines that never end; ``long_length``: a
Content-Length above what is sent, then the connection closes; ``short_length``:
more body than the Content-Length says; ``gzip_bomb``: a JSON answer gzipped
from ``size`` zero bytes (about 1 MB on the wire per GB).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


def gzip_of_zeros(size: int) -> bytes:
    """``size`` zero bytes gzipped, built a MiB at a time."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(size >> 20)]
    return b"".join(parts) + packer.compress(bytes(size & ((1 << 20) - 1))) + packer.flush()


_bombs: dict[int, bytes] = {}


def _range_start(request: bytes) -> int:
    """The first byte a ``Range: bytes=N-`` header asks for (0 without one)."""
    for line in request.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "range" and value.strip().startswith("bytes="):
            return int(value.strip()[6:].split("-", 1)[0] or 0)
    return 0


@dataclass
class HostileServer:
    """Serves ``behaviour`` to every connection; ``url`` is set once it listens."""

    behaviour: str
    body: bytes = b"x" * 4096
    interval: float = 0.1
    size: int = 1 << 30
    url: str = ""
    connections: int = 0
    _start: int = 0
    _server: asyncio.Server | None = field(default=None, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    async def start(self) -> HostileServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/model.raw"
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                request = await reader.readuntil(b"\r\n\r\n")
                self._start = _range_start(request)
                await getattr(self, "_" + self.behaviour)(writer)
        finally:
            self._tasks.discard(task)
            writer.close()

    def _head(self, length: int, extra: str = "") -> bytes:
        return (
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n"
        ).encode()

    async def _slowloris(self, writer: asyncio.StreamWriter) -> None:
        """Honours ``Range`` (so a client can resume every trickled byte), then trickles."""
        size, start = len(self.body), self._start
        if start:
            writer.write(
                f"HTTP/1.1 206 Partial Content\r\nContent-Length: {size - start}\r\n"
                f"Content-Range: bytes {start}-{size - 1}/{size}\r\n\r\n".encode()
            )
        else:
            writer.write(self._head(size, "Accept-Ranges: bytes\r\n"))
        for i in range(start, size):
            writer.write(self.body[i : i + 1])
            await writer.drain()
            await asyncio.sleep(self.interval)

    async def _endless_headers(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        n = 0
        while True:
            writer.write(f"X-Filler-{n}: {'a' * 100}\r\n".encode())
            n += 1
            await writer.drain()

    async def _long_length(self, writer: asyncio.StreamWriter) -> None:
        writer.write(self._head(len(self.body) * 2) + self.body)
        await writer.drain()

    async def _short_length(self, writer: asyncio.StreamWriter) -> None:
        writer.write(self._head(len(self.body) // 2) + self.body)
        await writer.drain()

    async def _gzip_bomb(self, writer: asyncio.StreamWriter) -> None:
        bomb = _bombs.get(self.size) or _bombs.setdefault(self.size, gzip_of_zeros(self.size))
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: {len(bomb)}\r\n\r\n"
        ).encode()
        writer.write(head + bomb)
        await writer.drain()


@contextlib.asynccontextmanager
async def hostile(behaviour: str, **kw: object) -> AsyncIterator[HostileServer]:
    server = await HostileServer(behaviour, **kw).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        await server.close()
