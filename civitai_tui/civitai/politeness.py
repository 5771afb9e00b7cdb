"""How the API client stays polite: request pacing and backoff for metadata calls.

A :class:`RateLimiter` spaces API requests (default at most 10 a second, with a
small burst) so resolving a thousand targets never sets off a 429 storm; one
limiter can be shared by several clients. When the server answers 429/503
anyway, ``slow_down`` halves the pace; each request that goes through wins a
little of it back (AIMD), up to the configured ceiling. :class:`Pacer` is what the
client needs of a limiter: fleet mode puts one shared by every engine behind it
(``civitai_tui.fleet.pacing``). :class:`Backoff` gives exponential
delays with full jitter, honouring ``Retry-After`` and capped (60 s by default).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Protocol


class Pacer(Protocol):
    """Request pacing as the API client uses it (a local or a fleet-wide limiter)."""

    max_rate: float

    async def acquire(self) -> None: ...
    def slow_down(self, retry_after: float | None = None) -> None: ...
    def set_ceiling(self, rate: float) -> None: ...


class RateLimiter:
    """A token bucket: ``rate`` requests a second, up to ``burst`` at once."""

    MIN_RATE = 0.2
    RECOVERY = 0.02  # each request that goes through wins back this share of the ceiling

    def __init__(self, rate: float = 10.0, burst: int = 3) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.max_rate = rate
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    def set_ceiling(self, rate: float) -> None:
        """A new top rate (``config set api.*``); a slowed-down limiter recovers to it."""
        self.max_rate = rate
        self.rate = min(self.rate, rate)

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        """Wait until one more request is allowed."""
        async with self._lock:
            self._refill()
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1
            self.rate = min(self.max_rate, self.rate + self.RECOVERY * self.max_rate)

    def slow_down(self, retry_after: float | None = None) -> None:
        """The server pushed back (429/503): halve the pace (the caller's own retry
        waits out ``retry_after``; other requests here go on at the halved pace)."""
        self.rate = max(self.MIN_RATE, self.rate / 2)


@dataclass(frozen=True)
class Backoff:
    """Retry timing for metadata requests answered 429/5xx or lost to the network."""

    attempts: int = 4  # total tries, the first included
    base: float = 1.0  # seconds; doubles each attempt
    cap: float = 60.0  # no single wait is longer than this

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if retry_after is not None and retry_after >= 0:
            return min(self.cap, retry_after)
        return min(self.cap, random.uniform(0, self.base * 2 ** (attempt - 1)))
