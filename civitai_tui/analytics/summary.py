"""The analysed period as plain data: what every report format renders.

:class:`AnalyticsReport` and its parts are dataclasses; :meth:`AnalyticsReport.to_dict`
gives the JSON-ready form documented in :mod:`civitai_tui.analytics.report_json`.
Speeds are bytes per second, durations seconds, times epoch seconds (UTC);
hour and day buckets are shifted by ``Period.utc_offset``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Period:
    """The analysed interval ``[since, until)`` and the clock used for hours and days."""

    since: float
    until: float
    utc_offset: int = 0  # seconds east of UTC


@dataclass(frozen=True, slots=True)
class Totals:
    started: int = 0
    completed: int = 0
    failed: int = 0
    success_rate: float | None = None  # completed / (completed + failed)
    bytes: int = 0  # size of the completed files
    fetched_bytes: int = 0  # bytes transferred for them (resumes fetch less)
    total_duration: float = 0.0
    mean_duration: float | None = None
    retries: int = 0
    scans: int = 0
    unsafe_scans: int = 0  # verdict "dangerous" or "error"


@dataclass(frozen=True, slots=True)
class SpeedStats:
    """Per-download speeds (fetched bytes / duration) of completed files."""

    count: int = 0
    mean: float | None = None
    median: float | None = None
    p95: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Completed and failed downloads of one host, model type or base model."""

    name: str
    completed: int
    failed: int
    bytes: int
    success_rate: float | None
    median_speed: float | None = None


@dataclass(frozen=True, slots=True)
class Count:
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class DayStat:
    date: str  # ISO date in the period's clock
    completed: int
    failed: int
    bytes: int
    success_rate: float | None


@dataclass(frozen=True, slots=True)
class ThroughputPoint:
    ts: float  # start of the bucket
    bytes_per_s: float  # completed bytes in the bucket / bucket length


@dataclass(frozen=True, slots=True)
class HistogramBin:
    low: float
    high: float
    count: int


@dataclass(frozen=True, slots=True)
class Trend:
    """The seed's split-half comparison of one metric."""

    metric: str
    first_half: float | None
    second_half: float | None
    change_pct: float | None
    direction: str  # "up" | "down" | "flat"
    significance: str  # "high" (> 5 %) | "medium" (> 2 %) | "low"


@dataclass(frozen=True, slots=True)
class Pattern:
    kind: str  # peak_hours, busy_weekdays, slow_host, failing_host, retry_storm, ...
    title: str
    detail: str
    confidence: float  # 0..1, grows with the evidence behind it
    recommendations: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OptimizerSummary:
    setting: str
    decisions: int
    last_value: str
    last_reason: str
    last_ts: float


@dataclass(frozen=True, slots=True)
class AnalyticsReport:
    """Everything the analyzer found for one period."""

    period: Period
    generated_at: float
    totals: Totals
    speed: SpeedStats
    failures_by_cause: list[Count]
    hosts: list[Breakdown]
    model_types: list[Breakdown]
    base_models: list[Breakdown]
    daily: list[DayStat]
    hourly: list[int]  # downloads finished (completed + failed) per hour of day, 0..23
    weekdays: list[int]  # the same per weekday, Monday first
    throughput: list[ThroughputPoint]
    speed_histogram: list[HistogramBin]
    trends: list[Trend]
    patterns: list[Pattern]
    optimizer: list[OptimizerSummary]
    recommendations: list[str]
    #: Length of each ``throughput`` bucket: an hour, 6 hours or a day by period length.
    throughput_bucket_s: int = 3600
    #: How creator names of this period's files are stored: "pseudonymised", "clear",
    #: "mixed" (the setting changed) or "none" (no names): the report claims only that.
    creator_names: str = "none"
    #: Why a statistic or a kind of pattern is missing (too little data), one line each.
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
