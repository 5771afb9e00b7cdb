"""Zero-copy body bytes for plain HTTP: socket → pipe → file with ``splice(2)``.

The copy path moves every byte twice through user space (``recv`` into a buffer,
``pwrite`` out of it). On Linux a plain-TCP socket can instead hand its pages to
a pipe and the pipe to the file at an offset, so the bytes never reach Python:
about a quarter less CPU per GB on loopback, and no GIL hand-off per chunk. TLS
sockets decrypt in user space, so they always take the copy path, as does any
file system that refuses ``splice`` (``EINVAL``: the caller falls back for good).

A :class:`SplicePipe` belongs to one :class:`~civitai_tui.download.stream.RangeStream`
and is only used by the thread running that stream's call.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
from pathlib import Path

from civitai_tui.download import disk

#: Pipe capacity asked for (the unprivileged maximum on a default Linux).
PIPE_SIZE = 1 << 20


def available() -> bool:
    """Whether this platform has ``os.splice`` (Linux, Python 3.10+)."""
    return hasattr(os, "splice")


class Unsupported(Exception):
    """The file (or its file system) does not take ``splice``; the bytes read are in ``data``."""

    def __init__(self, data: bytes) -> None:
        super().__init__("splice into this file is not supported")
        self.data = data


class SplicePipe:
    """A pipe that carries socket bytes into a file without copying them to user space."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._write, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self.capacity = fcntl.fcntl(self._write, fcntl.F_GETPIPE_SZ)

    def move(self, sock: int, fd: int, offset: int, count: int, timeout: float, where: Path) -> int:
        """Move up to ``count`` bytes from ``sock`` into ``fd`` at ``offset``.

        Returns the bytes written (0: the peer closed the connection). Waits at
        most ``timeout`` seconds for bytes (``TimeoutError``). The pipe is empty
        again when this returns or raises, so a pipe can be reused after errors.
        """
        moved = self._fill(sock, min(count, self.capacity), timeout)
        done = 0
        try:
            while done < moved:
                done += os.splice(self._read, fd, moved - done, offset_dst=offset + done)
        except OSError as exc:
            left = self._drain(moved - done)
            if exc.errno == errno.EINVAL and done == 0:
                raise Unsupported(left) from exc
            if exc.errno in disk.NO_SPACE_ERRNOS:
                raise disk.disk_full(where) from exc
            raise disk.filesystem_error(where, exc) from exc
        return moved

    def _fill(self, sock: int, count: int, timeout: float) -> int:
        """Splice what the socket has (up to ``count``) into the empty pipe."""
        while True:
            try:
                return os.splice(sock, self._write, count)
            except BlockingIOError:
                poller = select.poll()
                poller.register(sock, select.POLLIN)
                if not poller.poll(timeout * 1000):
                    raise TimeoutError("no bytes from the server") from None

    def _drain(self, count: int) -> bytes:
        """Take back bytes the pipe still holds."""
        data = b""
        while len(data) < count:
            chunk = os.read(self._read, count - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)
