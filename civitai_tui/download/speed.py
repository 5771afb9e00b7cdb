"""Speed limits: an overall one (``download.max_speed``) and one per job (``--max-speed``).

Like aria2's ``--max-overall-download-limit`` and ``--max-download-limit``, both
may change while files download. A :class:`RateLimiter` is a virtual clock shared
by every connection it limits (worker threads and the event loop alike): each
chunk that lands reserves its bytes' time on the clock and its connection waits
until that time has come. The long-run rate cannot exceed the limit by more
than ``BURST`` seconds' worth, and connections are served in the order their
bytes land, so the optimizer's equal connections per file share a limit
equally between the files of a host.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from civitai_tui.errors import CivitaiTuiError, FailureKind

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg](?:i?b)?|b)?\s*(?:/s)?\s*$", re.IGNORECASE)
NO_LIMIT = frozenset({"", "0", "none", "off", "unlimited"})
#: Unused time a limiter lets accumulate (a connection idle for a while may burst this much).
BURST = 0.05
#: Under a limit, reads are at most this many seconds of it (and at least ``MIN_READ``).
QUANTUM = 0.02
MIN_READ = 16 * 1024


def parse_speed(value: str | int | float) -> int:
    """Bytes per second from ``20MB``, ``20MB/s``, ``512KiB``, ``5M`` or ``1000000``.

    ``0``, ``none``, ``off`` and ``unlimited`` mean no limit (0). Decimal units
    (MB = 10^6 bytes) as browsers and aria2's ``M`` (aria2: 2^20) differ: ``MiB``
    is there for binary.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a speed: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a speed cannot be negative: {value!r}")
        return int(value)
    if value.strip().lower() in NO_LIMIT:
        return 0
    match = _RATE.match(value)
    if match is None:
        raise ValueError(f"not a speed: {value!r} (use e.g. 20MB, 512KiB, 1GB/s, or 0)")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


class RateLimiter:
    """Bytes per second shared by every connection that takes from it (thread-safe)."""

    def __init__(self, rate: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0  # when the bytes reserved so far have been "paid for"

    def set_rate(self, rate: int) -> None:
        with self._lock:
            self.rate = max(0, rate)
            self._next = min(self._next, self._clock())  # a new limit starts now

    def reserve(self, nbytes: int) -> float:
        """Take ``nbytes`` that just landed; the seconds to wait before the next read."""
        with self._lock:
            if self.rate <= 0:
                return 0.0
            now = self._clock()
            self._next = max(self._next, now - BURST) + nbytes / self.rate
            return max(0.0, self._next - now)


@dataclass
class SpeedLimits:
    """The overall limiter and one per job (created on first use from ``job_rate``)."""

    overall: RateLimiter = field(default_factory=RateLimiter)
    #: A job's limit (bytes/s, 0 or None: none), asked when its first file starts.
    job_rate: Callable[[str], int | None] = lambda _job_id: None
    jobs: dict[str, RateLimiter] = field(default_factory=dict)

    def set_overall(self, rate: int) -> None:
        self.overall.set_rate(rate)

    def set_job(self, job_id: str, rate: int) -> None:
        self.jobs.setdefault(job_id, RateLimiter()).set_rate(rate)

    def limiters(self, job_id: str | None) -> tuple[RateLimiter, ...]:
        """What the bytes of a file of ``job_id`` (None: no job) count against."""
        if job_id is None:
            return (self.overall,)
        limiter = self.jobs.get(job_id)
        if limiter is None:
            limiter = self.jobs[job_id] = RateLimiter(self.job_rate(job_id) or 0)
        return (self.overall, limiter)


class Throttle:
    """What one file's connections call after each read: the limiters it counts against."""

    def __init__(self, limiters: tuple[RateLimiter, ...]) -> None:
        self.limiters = limiters

    def __call__(self, nbytes: int) -> float:
        """Reserve ``nbytes`` on every limiter; the longest wait (the strictest limit)."""
        return max(limiter.reserve(nbytes) for limiter in self.limiters)

    def quantum(self, default: int) -> int:
        """The most bytes to read at once: ``QUANTUM`` seconds of the strictest limit.

        Small reads keep a limited rate smooth (and its progress reports honest);
        without a limit, ``default``.
        """
        rates = [limiter.rate for limiter in self.limiters if limiter.rate > 0]
        if not rates:
            return default
        return max(MIN_READ, min(default, int(min(rates) * QUANTUM)))


class SpeedCheck:
    """One connection's floor (``download.min_speed`` B/s over ``min_speed_window`` s):
    raises ``STALLED`` when less arrives in a window, so another connection can take
    its range. Time spent waiting on our own speed limits does not count."""

    def __init__(self, min_speed: int, window: float, now: float | None = None) -> None:
        self._min_speed = min_speed
        self._window = window
        self._start = time.monotonic() if now is None else now
        self._bytes = 0

    def paused(self, seconds: float) -> None:
        """The connection waited ``seconds`` on a speed limit: not counted as slow."""
        self._start += seconds

    def add(self, n: int, now: float | None = None) -> None:
        """``n`` bytes arrived (at ``now``, monotonic; default: the clock now)."""
        self._bytes += n
        now = time.monotonic() if now is None else now
        elapsed = now - self._start
        if elapsed < self._window:
            return
        if self._min_speed and self._bytes < self._min_speed * elapsed:
            raise CivitaiTuiError(
                FailureKind.STALLED,
                f"connection too slow ({self._bytes / elapsed:.0f} B/s); "
                "dropping it so another can take its range",
            )
        self._start, self._bytes = now, 0
