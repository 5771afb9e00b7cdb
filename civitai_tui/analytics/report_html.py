"""The HTML report: one self-contained page (Jinja2 template, autoescaped).

Metric cards in a responsive CSS grid (one column under 768 px), light and dark
themes, and interactive Plotly charts with plotly.js inlined once, so the file
works offline; a Content-Security-Policy forbids every network request.
``include_charts=False`` leaves out plotly.js and the charts (a few kB).
"""

from __future__ import annotations

import functools
from dataclasses import asdict

import jinja2

from civitai_tui import __version__
from civitai_tui.analytics import formatting as fmt
from civitai_tui.analytics.charts import PLOTLY_CONFIG, chart_specs
from civitai_tui.analytics.report_tables import (
    breakdown_tables,
    optimizer_table,
    privacy_line,
    trends_table,
)
from civitai_tui.analytics.summary import AnalyticsReport


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("civitai_tui.analytics", "templates"),
        autoescape=True,  # every value is escaped; only plotly.js is marked safe
        trim_blocks=True,
        lstrip_blocks=True,
    )


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def render_html(
    report: AnalyticsReport, *, title: str, theme: str, include_charts: bool, max_rows: int
) -> str:
    """The report page as a string."""
    charts = chart_specs(report) if include_charts else []
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title,
            theme=theme,
            version=__version__,
            period=fmt.period(report.period),
            generated=fmt.timestamp(report.generated_at, report.period.utc_offset),
            cards=fmt.headline(report),
            charts=charts,
            chart_data=[asdict(c) for c in charts],
            plotly_config=PLOTLY_CONFIG,
            plotly_js=_plotly_js() if charts else "",
            trends=trends_table(report),
            patterns=report.patterns,
            recommendations=report.recommendations,
            notes=report.notes,
            tables=breakdown_tables(report, max_rows),
            optimizer=optimizer_table(report),
            privacy=privacy_line(report),
        )
    )
