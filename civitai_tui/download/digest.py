"""SHA256 of a file computed while it downloads, by following its written prefix.

The bytes before the first missing byte are final, so a worker thread reads them
back (they are still in the page cache) and hashes them while the download goes
on. With one sequential stream the digest is ready almost as the last byte
lands; with several connections the prefix catches up when the early ranges
finish. Runs in a thread (hashlib releases the GIL), never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

BLOCK = 1 << 20


class PrefixHasher:
    """Hashes ``fd`` from byte 0 up to a growing offset."""

    def __init__(self, fd: int, min_step: int = 8 << 20) -> None:
        self._fd = fd
        self._hash = hashlib.sha256()
        self._min_step = min_step
        self._task: asyncio.Task[None] | None = None
        self.offset = 0

    def _consume(self, upto: int) -> None:
        while self.offset < upto:
            data = os.pread(self._fd, min(BLOCK, upto - self.offset), self.offset)
            if not data:
                raise OSError(f"short read at {self.offset} while hashing")
            self._hash.update(data)
            self.offset += len(data)

    def follow(self, upto: int) -> None:
        """Hash up to ``upto`` in the background, if enough is new and no pass is running."""
        if (self._task is None or self._task.done()) and upto - self.offset >= self._min_step:
            self._task = asyncio.ensure_future(asyncio.to_thread(self._consume, upto))

    async def wait(self) -> None:
        """Let a running background pass finish (before the fd is closed or reused)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def finish(self, size: int) -> str:
        """The hex digest of the first ``size`` bytes."""
        if self._task is not None:
            await self._task
        await asyncio.to_thread(self._consume, size)
        return self._hash.hexdigest()
