"""The network condition classifier: EXCELLENT / GOOD / FAIR / POOR / UNSTABLE.

The seed's rule is the default: the mean of recent total-throughput samples above
10 / 5 / 1 MB/s is EXCELLENT / GOOD / FAIR, anything lower is POOR, and a
standard deviation above 50 % of the mean is UNSTABLE whatever the mean.
Thresholds are a :class:`ConditionThresholds` so they can be configured.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

MB = 1_000_000


class NetworkCondition(StrEnum):
    EXCELLENT = "excellent"
    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"
    UNSTABLE = "unstable"


@dataclass(frozen=True)
class ConditionThresholds:
    """Mean speeds (bytes/s) that separate the classes, and the instability ratio."""

    excellent: float = 10 * MB
    good: float = 5 * MB
    fair: float = 1 * MB
    #: Standard deviation above this fraction of the mean means UNSTABLE.
    unstable_ratio: float = 0.5
    #: Fewer samples than this are not enough to call a network unstable.
    min_samples: int = 3


DEFAULT_THRESHOLDS = ConditionThresholds()


def classify_network_condition(
    speeds: Sequence[float], thresholds: ConditionThresholds = DEFAULT_THRESHOLDS
) -> NetworkCondition | None:
    """The condition for throughput samples ``speeds`` (bytes/s); None without samples."""
    if not speeds:
        return None
    mean = statistics.fmean(speeds)
    enough = len(speeds) >= thresholds.min_samples and mean > 0
    if enough and statistics.pstdev(speeds) > thresholds.unstable_ratio * mean:
        return NetworkCondition.UNSTABLE
    if mean > thresholds.excellent:
        return NetworkCondition.EXCELLENT
    if mean > thresholds.good:
        return NetworkCondition.GOOD
    if mean > thresholds.fair:
        return NetworkCondition.FAIR
    return NetworkCondition.POOR
