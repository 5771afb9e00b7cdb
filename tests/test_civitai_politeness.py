"""Request pacing and backoff timing."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from civitai_tui.civitai.politeness import Backoff, RateLimiter
from civitai_tui.download.retry import parse_retry_after


async def test_rate_limiter_spaces_requests_after_the_burst() -> None:
    limiter = RateLimiter(rate=50, burst=2)
    started = time.monotonic()
    for _ in range(2):
        await limiter.acquire()
    assert time.monotonic() - started < 0.02  # the burst goes at once
    await asyncio.gather(*(limiter.acquire() for _ in range(4)))
    assert time.monotonic() - started >= 4 / 50 - 0.005


def test_rate_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0)
    with pytest.raises(ValueError):
        RateLimiter(burst=0)


def test_backoff_grows_with_jitter_and_caps() -> None:
    backoff = Backoff(attempts=5, base=1.0, cap=3.0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 3.0), (6, 3.0)):
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(0 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert backoff.delay(1, retry_after=2.5) == 2.5
    assert backoff.delay(1, retry_after=600) == 3.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 31
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier) == 0.0


async def test_rate_limiter_halves_on_push_back_and_recovers() -> None:
    limiter = RateLimiter(rate=100.0, burst=1)
    limiter.slow_down()
    limiter.slow_down()
    assert limiter.rate == 25.0
    for _ in range(10):
        await limiter.acquire()
    assert 25.0 < limiter.rate <= 100.0
    for _ in range(100):
        limiter.slow_down()
    assert limiter.rate == RateLimiter.MIN_RATE
