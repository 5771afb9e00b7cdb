"""Backoff delays, Retry-After parsing and which errors are retried."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from civitai_tui.download.retry import RetryPolicy, parse_retry_after
from civitai_tui.errors import CivitaiTuiError, FailureKind


def test_exponential_with_jitter_bounds_and_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, cap=5.0, jitter=0.1)
    for attempt, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert min(delays) >= nominal * 0.9 - 1e-9
        assert max(delays) <= nominal * 1.1 + 1e-9
        assert len(set(delays)) > 1  # jitter is applied
    assert max(policy.delay(12) for _ in range(50)) <= 5.0


def test_retry_after_seconds_is_a_floor_but_capped() -> None:
    policy = RetryPolicy(base_delay=0.1, cap=60.0, jitter=0.2)
    delays = [policy.delay(1, retry_after=7) for _ in range(100)]
    assert min(delays) >= 7 and max(delays) <= 7 * 1.2
    assert RetryPolicy(cap=3.0).delay(1, retry_after=100) == 3.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(" 2.5 ") == 2.5
    now = time.time()
    parsed = parse_retry_after(formatdate(now + 30, usegmt=True), now=now)
    assert parsed is not None and 29 <= parsed <= 31
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("kind", "retried"),
    [
        (FailureKind.AUTH_REQUIRED, False),
        (FailureKind.FORBIDDEN, False),
        (FailureKind.NOT_FOUND, False),
        (FailureKind.GONE, False),
        (FailureKind.BAD_CONTENT, False),
        (FailureKind.RATE_LIMITED, True),
        (FailureKind.SERVER, True),
        (FailureKind.NETWORK, True),
        (FailureKind.STALLED, True),
    ],
)
def test_should_retry_by_kind(kind: FailureKind, retried: bool) -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(CivitaiTuiError(kind, "x"), 1) is retried
    assert policy.should_retry(CivitaiTuiError(kind, "x"), 3) is False
