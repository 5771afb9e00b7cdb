"""When to try again: exponential backoff with jitter, ``Retry-After`` honoured, capped.

The base delay is a parameter so the performance optimizer can set it from the
network condition. Only errors whose kind is retryable are retried (never
401/403/404/410); the attempt count is kept per connection and restarts when
bytes make forward progress, so a long download over a flaky link does not use
up its attempts (huggingface_hub style). A connection that broke after moving
bytes is retried at once, as aria2 does: one reset every few megabytes must not
cost a backoff each time; if the retry fails too, backoff starts.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from civitai_tui.binding import bound
from civitai_tui.errors import CivitaiTuiError


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # delay-seconds is a non-negative number (RFC 9110); anything else is garbage
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` tries per connection; delays ``base_delay * 2**(n-1)`` ± jitter, capped."""

    max_attempts: int = bound("download.max_attempts", 8)
    base_delay: float = 1.0
    cap: float = 60.0
    jitter: float = 0.1

    def delay(
        self, attempt: int, retry_after: float | None = None, progressed: bool = False
    ) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1).

        ``progressed``: the failed try had moved bytes (no wait, unless ``Retry-After``).
        """
        if retry_after is not None:
            return min(self.cap, max(0.0, retry_after) * (1 + random.uniform(0, self.jitter)))
        if progressed:
            return 0.0
        backoff = self.base_delay * 2 ** max(0, attempt - 1)
        spread = random.uniform(-self.jitter, self.jitter)
        return min(self.cap, backoff * (1 + spread))

    def should_retry(self, error: CivitaiTuiError, attempt: int) -> bool:
        """True when ``error`` can be retried and attempt ``attempt`` was not the last."""
        return error.retryable and attempt < self.max_attempts
