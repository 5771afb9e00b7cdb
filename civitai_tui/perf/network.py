"""The network condition classifier: EXCELLENT / GOOD / FAIR / POOR / UNSTABLE.

The seed's rule is the default: the mean of recent total-throughput samples above
10 / 5 / 1 MB/s is EXCELLENT / GOOD / FAIR, anything lower is POOR, and a
standard deviation above 50 % of the mean is UNSTABLE whatever the mean.
Thresholds are a :class:`ConditionThresholds` so they can be configured. A
:class:`ConditionWindow` holds the samples the optimizer classifies: the recent
ones taken while something downloads, without the first seconds after an idle
spell (a transfer ramping up from zero is not an unstable network).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

MB = 1_000_000
#: Active samples left out after an idle spell (the ramp up of a new transfer).
WARMUP_SAMPLES = 3


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


@dataclass
class ConditionWindow:
    """The last ``size`` throughput samples taken while downloading, warm-up excluded."""

    size: int = 10
    warmup: int = WARMUP_SAMPLES
    samples: deque[float] = field(init=False)
    _skip: int = field(init=False)

    def __post_init__(self) -> None:
        self.samples = deque(maxlen=self.size)
        self._skip = self.warmup

    def add(
        self, rate: float, active: bool, thresholds: ConditionThresholds = DEFAULT_THRESHOLDS
    ) -> NetworkCondition | None:
        """Record one sample; the condition it leads to, or None with nothing to judge yet."""
        if not active:
            self._skip = self.warmup
            return None
        if self._skip:
            self._skip -= 1
            return None
        self.samples.append(rate)
        return classify_network_condition(list(self.samples), thresholds)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples) if self.samples else 0.0
