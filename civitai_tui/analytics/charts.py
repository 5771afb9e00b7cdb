"""Plotly chart specs (plain ``data`` / ``layout`` dicts) for the HTML report.

Specs are built from the analysed summary only (already aggregated, so a report
stays small whatever the number of events) and rendered in the page with
``Plotly.newPlot``; no plotly.py figure objects are built.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from civitai_tui.analytics.summary import AnalyticsReport

#: Plotly config: no Plotly Cloud "share"/"send to cloud" button, no logo link.
PLOTLY_CONFIG = {
    "showSendToCloud": False,
    "showEditInChartStudio": False,
    "showLink": False,
    "displaylogo": False,
    "displayModeBar": "hover",
    "responsive": True,
}
_MIB = 1024 * 1024  # binary units, as everywhere in civitai-tui
BUCKET_NAMES = {3600: "hour", 6 * 3600: "6 hours", 86400: "day"}


@dataclass(frozen=True, slots=True)
class ChartSpec:
    id: str
    title: str
    data: list[dict[str, Any]]
    layout: dict[str, Any]


def chart_specs(report: AnalyticsReport) -> list[ChartSpec]:
    """The report's charts, in page order."""
    return [
        _throughput(report),
        _daily(report),
        _hourly(report),
        _failures(report),
        _speed_distribution(report),
    ]


def _iso(ts: float, offset: int) -> str:
    zone = dt.timezone(dt.timedelta(seconds=offset))
    return dt.datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M")


def _layout(x_title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    return {
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "margin": {"l": 60, "r": 20, "t": 10, "b": 50},
        "height": 320,
        "showlegend": False,
        **extra,
    }


def _throughput(report: AnalyticsReport) -> ChartSpec:
    """Data completed in each bucket of the period, on a date axis spanning the period."""
    offset, bucket = report.period.utc_offset, report.throughput_bucket_s
    unit = BUCKET_NAMES.get(bucket, f"{bucket // 3600} hours")
    data = [
        {
            "type": "bar",
            "name": f"MiB per {unit}",
            "x": [_iso(p.ts + bucket / 2, offset) for p in report.throughput],
            "y": [round(p.bytes_per_s * bucket / _MIB, 3) for p in report.throughput],
            "width": bucket * 1000 * 0.9,  # ms on a date axis
        }
    ]
    layout = _layout("time", f"MiB per {unit}")
    layout["xaxis"].update(type="date", range=_span(report))
    return ChartSpec("chart-throughput", f"Data downloaded per {unit}", data, layout)


def _span(report: AnalyticsReport) -> list[str]:
    """The x range of a date axis: the period, widened to whole buckets."""
    p, points = report.period, report.throughput
    since = min(p.since, points[0].ts) if points else p.since
    until = max(p.until, points[-1].ts + report.throughput_bucket_s) if points else p.until
    return [_iso(since, p.utc_offset), _iso(until, p.utc_offset)]


def _daily(report: AnalyticsReport) -> ChartSpec:
    days = [d.date for d in report.daily]
    data = [
        {"type": "bar", "name": "completed", "x": days, "y": [d.completed for d in report.daily]},
        {"type": "bar", "name": "failed", "x": days, "y": [d.failed for d in report.daily]},
        {
            "type": "scatter", "mode": "lines+markers", "name": "success rate %", "x": days,
            "yaxis": "y2",
            "y": [None if d.success_rate is None else round(d.success_rate * 100, 2)
                  for d in report.daily],
        },
    ]  # fmt: skip
    layout = _layout(
        "day",
        "downloads",
        barmode="stack",
        showlegend=True,
        legend={"orientation": "h", "y": -0.3},
        margin={"l": 60, "r": 60, "t": 10, "b": 80},
        yaxis2={"title": {"text": "success %"}, "overlaying": "y", "side": "right",
                "range": [0, 100]},
    )  # fmt: skip
    return ChartSpec("chart-daily", "Downloads and success rate by day", data, layout)


def _hourly(report: AnalyticsReport) -> ChartSpec:
    data = [{"type": "bar", "name": "downloads", "x": list(range(24)), "y": report.hourly}]
    layout = _layout("hour of day", "downloads finished")
    layout["xaxis"]["dtick"] = 2
    return ChartSpec("chart-hourly", "Activity by hour of day", data, layout)


def _failures(report: AnalyticsReport) -> ChartSpec:
    causes = list(reversed(report.failures_by_cause))
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "name": "failures",
            "x": [c.count for c in causes],
            "y": [c.name for c in causes],
        }
    ]
    layout = _layout("failures", "", margin={"l": 120, "r": 20, "t": 10, "b": 50})
    return ChartSpec("chart-failures", "Failures by cause", data, layout)


def _speed_distribution(report: AnalyticsReport) -> ChartSpec:
    bins = report.speed_histogram
    data = [
        {
            "type": "bar",
            "name": "downloads",
            "x": [round((b.low + b.high) / 2 / _MIB, 3) for b in bins],
            "y": [b.count for b in bins],
        }
    ]
    return ChartSpec("chart-speed", "Speed distribution", data,
                     _layout("MiB/s per download", "downloads"))  # fmt: skip
