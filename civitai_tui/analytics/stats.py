"""Small statistics the analyzer needs: percentiles, histograms, split-half trends.

Percentiles use the inclusive (linear interpolation) method of
``statistics.quantiles``: p95 of ``[10, 20, 30, 40, 50]`` is 48.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from civitai_tui.analytics.summary import HistogramBin, SpeedStats, Trend

HIGH_CHANGE_PCT = 5.0
MEDIUM_CHANGE_PCT = 2.0


def speed_stats(speeds: Sequence[float]) -> SpeedStats:
    """Mean, median, p95, min and max of ``speeds`` (all None when empty)."""
    if not speeds:
        return SpeedStats()
    return SpeedStats(
        count=len(speeds),
        mean=statistics.fmean(speeds),
        median=statistics.median(speeds),
        p95=percentile(speeds, 95),
        min=min(speeds),
        max=max(speeds),
    )


def percentile(values: Sequence[float], pct: int) -> float:
    """The ``pct``-th percentile (inclusive method); the value itself for one value."""
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def mean_or_none(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def median_or_none(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def histogram(values: Sequence[float], bins: int = 20) -> list[HistogramBin]:
    """Equal-width bins from min to max (one bin when all values are equal)."""
    if not values:
        return []
    low, high = min(values), max(values)
    if high == low:
        return [HistogramBin(low, high, len(values))]
    width = (high - low) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - low) / width), bins - 1)] += 1
    return [HistogramBin(low + i * width, low + (i + 1) * width, c) for i, c in enumerate(counts)]


def trend(metric: str, first: float | None, second: float | None) -> Trend:
    """Compare two halves: relative change in %, direction and significance."""
    if first is None or second is None or first == 0:
        direction = "flat" if first == second or second is None else "up"
        return Trend(metric, first, second, None, direction, "low")
    change = (second - first) / abs(first) * 100.0
    direction = "up" if change > 0 else "down" if change < 0 else "flat"
    if abs(change) > HIGH_CHANGE_PCT:
        significance = "high"
    elif abs(change) > MEDIUM_CHANGE_PCT:
        significance = "medium"
    else:
        significance = "low"
    return Trend(metric, first, second, change, direction, significance)
