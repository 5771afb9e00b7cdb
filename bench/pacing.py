"""Per-connection rate caps for the bench server: rate parsing and a token bucket.

The bucket is clock-driven (the caller passes ``now``) so it can be checked
without waiting, and it never spins: :meth:`TokenBucket.reserve` says how long
to sleep before the next write may go out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*(?:/s)?\s*$", re.IGNORECASE)


def parse_rate(text: str) -> int:
    """Bytes per second from ``"20MB"``, ``"20MB/s"``, ``"512KiB"`` or ``"1000000"``."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"not a rate: {text!r} (use e.g. 20MB, 512KiB, 1GB/s)")
    value = float(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    if value < 1:
        raise ValueError(f"rate must be at least 1 byte/s, got {text!r}")
    return int(value)


def write_quantum(rate: int) -> int:
    """Bytes per paced write: about 50 writes a second, between 16 KiB and 1 MiB."""
    return max(16 * 1024, min(1024 * 1024, rate // 50))


@dataclass
class TokenBucket:
    """Allows ``rate`` bytes/s on average with bursts of at most ``capacity`` bytes."""

    rate: float
    capacity: float
    tokens: float = field(init=False)
    stamp: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def reserve(self, size: int, now: float) -> float:
        """Take ``size`` bytes of budget; return the seconds to wait before sending them."""
        if self.stamp is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= size
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
