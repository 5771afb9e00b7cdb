"""The report's tables as text, shared by the HTML and PDF reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from civitai_tui.analytics import formatting as fmt
from civitai_tui.analytics.patterns import WEEKDAYS
from civitai_tui.analytics.summary import AnalyticsReport, Breakdown, Trend


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


def trends_table(report: AnalyticsReport) -> Table:
    header = ["metric", "first half", "second half", "change", "significance"]
    return Table("Trends", header, [_trend_row(t) for t in report.trends])


def _trend_row(t: Trend) -> list[str]:
    show = _TREND_FORMAT.get(t.metric, _count)
    return [
        t.metric.replace("_", " "),
        show(t.first_half),
        show(t.second_half),
        fmt.change(t.change_pct),
        t.significance,
    ]


def _count(value: float | None) -> str:
    return fmt.NONE if value is None else f"{value:,.0f}"


_TREND_FORMAT: dict[str, Callable[[float | None], str]] = {
    "success_rate": fmt.pct,
    "bytes": fmt.size,
    "mean_speed": fmt.speed,
}


def breakdown_tables(report: AnalyticsReport, max_rows: int) -> list[Table]:
    """Failures, hosts, model types, base models and weekdays."""
    failures = [[c.name, f"{c.count:,}"] for c in report.failures_by_cause[:max_rows]]
    weekdays = [[day, f"{n:,}"] for day, n in zip(WEEKDAYS, report.weekdays, strict=True)]
    return [
        Table("Failures by cause", ["cause", "failures"], failures),
        _breakdown("Hosts", "host", report.hosts[:max_rows]),
        _breakdown("Model types", "type", report.model_types[:max_rows]),
        _breakdown("Base models", "base model", report.base_models[:max_rows]),
        Table("Activity by weekday", ["weekday", "downloads"], weekdays),
    ]


def optimizer_table(report: AnalyticsReport) -> Table:
    """What the performance optimizer changed (its own section: decisions, not advice)."""
    rows = [[o.setting, f"{o.decisions:,}", o.last_value, o.last_reason] for o in report.optimizer]
    return Table("Optimizer decisions", ["setting", "changes", "now", "why"], rows)


def privacy_line(report: AnalyticsReport) -> str:
    """What the report may truthfully say about stored names (``creator_names``)."""
    return {
        "pseudonymised": "creator names were pseudonymised before storage",
        "clear": "creator names are stored in clear (analytics.anonymize_users = false)",
        "mixed": "some creator names are stored in clear (analytics.anonymize_users was off)",
    }.get(report.creator_names, "no creator names are stored for this period")


def _breakdown(title: str, name: str, items: list[Breakdown]) -> Table:
    header = [name, "completed", "failed", "success", "data", "median speed"]
    rows = [
        [b.name, f"{b.completed:,}", f"{b.failed:,}", fmt.pct(b.success_rate), fmt.size(b.bytes),
         fmt.speed(b.median_speed)]
        for b in items
    ]  # fmt: skip
    return Table(title, header, rows)
