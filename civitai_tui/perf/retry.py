"""Adaptive retry delays: the base delay follows the network condition (seed table).

Builds on :class:`civitai_tui.download.retry.RetryPolicy` (exponential backoff,
±10 % jitter, 60 s cap, ``Retry-After`` honoured); only the base changes:
0.5 s on an EXCELLENT network, 1 / 1.5 / 2 s on GOOD / FAIR / POOR, 3 s when UNSTABLE.
"""

from __future__ import annotations

from dataclasses import replace

from civitai_tui.download.retry import RetryPolicy
from civitai_tui.perf.network import NetworkCondition

BASE_DELAYS: dict[NetworkCondition, float] = {
    NetworkCondition.EXCELLENT: 0.5,
    NetworkCondition.GOOD: 1.0,
    NetworkCondition.FAIR: 1.5,
    NetworkCondition.POOR: 2.0,
    NetworkCondition.UNSTABLE: 3.0,
}
#: The base while nothing is known yet.
DEFAULT_BASE_DELAY = BASE_DELAYS[NetworkCondition.GOOD]


def base_delay_for(condition: NetworkCondition | None) -> float:
    return BASE_DELAYS.get(condition, DEFAULT_BASE_DELAY) if condition else DEFAULT_BASE_DELAY


def policy_for(condition: NetworkCondition | None, policy: RetryPolicy) -> RetryPolicy:
    """``policy`` with the base delay of ``condition``."""
    return replace(policy, base_delay=base_delay_for(condition))


def get_retry_delay(
    condition: NetworkCondition | None,
    attempt: int,
    retry_after: float | None = None,
    *,
    cap: float = 60.0,
    jitter: float = 0.1,
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    return RetryPolicy(base_delay=base_delay_for(condition), cap=cap, jitter=jitter).delay(
        attempt, retry_after
    )
