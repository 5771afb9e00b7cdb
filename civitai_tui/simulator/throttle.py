"""A token bucket for byte rates: callers sleep off their debt, no busy loops."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Rate-limits bytes; several writers may share one bucket."""

    #: Seconds of unused rate that may accumulate as a burst.
    BURST_SECONDS = 0.05

    def __init__(self) -> None:
        self._level = 0.0
        self._stamp = time.monotonic()

    async def consume(self, nbytes: int, rate: float) -> None:
        """Take ``nbytes`` at ``rate`` bytes/s (0 = unlimited), sleeping if in debt."""
        now = time.monotonic()
        if rate <= 0:
            self._level, self._stamp = 0.0, now
            return
        refill = (now - self._stamp) * rate
        self._level = min(self._level + refill, rate * self.BURST_SECONDS) - nbytes
        self._stamp = now
        if self._level < 0:
            await asyncio.sleep(-self._level / rate)


def chunk_for_rate(rate: float, default: int) -> int:
    """A write size that keeps a capped stream smooth (about 20 writes/s)."""
    if rate <= 0:
        return default
    return max(1, min(default, int(rate / 20)))
