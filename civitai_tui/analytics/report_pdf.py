"""The PDF report, fully offline: fpdf2 tables and bar charts drawn with its primitives.

Core PDF fonts (Helvetica) need no font files; they cover Latin-1, so other
characters (e.g. CJK model names) are replaced with ``?`` rather than failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fpdf import FPDF
from fpdf.fonts import FontFace

from civitai_tui import __version__
from civitai_tui.analytics import formatting as fmt
from civitai_tui.analytics.report_tables import (
    Table,
    breakdown_tables,
    optimizer_table,
    trends_table,
)
from civitai_tui.analytics.summary import AnalyticsReport

_ACCENT = (47, 111, 222)
_BAD = (194, 65, 12)
_GREY = (110, 116, 128)
_LIGHT = (223, 226, 232)
_CHART_HEIGHT = 56.0  # mm, title and labels included


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float]
    color: tuple[int, int, int]


def latin1(text: str) -> str:
    """``text`` limited to what the core fonts can draw."""
    return text.encode("latin-1", "replace").decode("latin-1")


def render_pdf(report: AnalyticsReport, *, title: str, max_rows: int) -> bytes:
    """The report as PDF bytes."""
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_title(latin1(title))
    pdf.set_creator(f"civitai-tui {__version__}")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    _heading(pdf, report, title)
    _cards(pdf, fmt.headline(report))
    _charts(pdf, report)
    _table(pdf, trends_table(report))
    _patterns(pdf, report)
    for table in [*breakdown_tables(report, max_rows), optimizer_table(report)]:
        _table(pdf, table)
    return bytes(pdf.output())


def _heading(pdf: FPDF, report: AnalyticsReport, title: str) -> None:
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.set_text_color(*_GREY)
    pdf.cell(0, 6, latin1(fmt.period(report.period)), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(3)


def _cards(pdf: FPDF, cards: list[tuple[str, str]]) -> None:
    """A 4-column grid of headline numbers."""
    width = (pdf.epw - 3 * 3) / 4
    top = pdf.get_y()
    for i, (label, value) in enumerate(cards):
        x = pdf.l_margin + (i % 4) * (width + 3)
        y = top + (i // 4) * 19
        pdf.set_draw_color(*_LIGHT)
        pdf.rect(x, y, width, 16)
        pdf.set_xy(x + 2, y + 1.5)
        pdf.set_font("Helvetica", "", 7.5)
        pdf.set_text_color(*_GREY)
        pdf.cell(width - 4, 4, latin1(label))
        pdf.set_xy(x + 2, y + 6.5)
        pdf.set_font("Helvetica", "B", 13)
        pdf.set_text_color(0, 0, 0)
        pdf.cell(width - 4, 7, latin1(value))
    pdf.set_xy(pdf.l_margin, top + ((len(cards) + 3) // 4) * 19 + 2)


def _charts(pdf: FPDF, report: AnalyticsReport) -> None:
    """Four bar charts in a 2 x 2 grid."""
    causes = report.failures_by_cause[:8]
    bins = report.speed_histogram
    charts = [
        ("Downloads by day (completed / failed)", [d.date[5:] for d in report.daily],
         [Series("completed", [d.completed for d in report.daily], _ACCENT),
          Series("failed", [d.failed for d in report.daily], _BAD)]),
        ("Activity by hour of day", [f"{h:02d}" for h in range(24)],
         [Series("downloads", report.hourly, _ACCENT)]),
        ("Failures by cause", [c.name for c in causes],
         [Series("failures", [c.count for c in causes], _BAD)]),
        ("Speed distribution (MiB/s)", [f"{(b.low + b.high) / 2 / 2**20:.0f}" for b in bins],
         [Series("downloads", [b.count for b in bins], _ACCENT)]),
    ]  # fmt: skip
    width = (pdf.epw - 6) / 2
    top = pdf.get_y()
    for i, (title, labels, series) in enumerate(charts):
        x = pdf.l_margin + (i % 2) * (width + 6)
        _bar_chart(pdf, title, labels, series, x, top + (i // 2) * _CHART_HEIGHT, width)
    pdf.set_xy(pdf.l_margin, top + 2 * _CHART_HEIGHT + 2)


def _bar_chart(
    pdf: FPDF,
    title: str,
    labels: Sequence[str],
    series: list[Series],
    x: float,
    top: float,
    width: float,
) -> None:
    """Stacked bars with a max-value axis label and sparse category labels."""
    height = _CHART_HEIGHT - 16
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_xy(x, top)
    pdf.cell(width, 5, latin1(title))
    base = top + 7 + height
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    peak = max(totals, default=0)
    pdf.set_draw_color(*_GREY)
    pdf.line(x, base, x + width, base)
    pdf.set_font("Helvetica", "", 6.5)
    if peak == 0:
        pdf.set_xy(x, top + 7 + height / 2)
        pdf.cell(width, 4, "no data in this period", align="C")
        return
    pdf.set_xy(x, top + 6)
    pdf.cell(width, 3, f"max {peak:,.0f}", align="R")
    step = width / len(labels)
    every = max(1, round(len(labels) / 8))
    for i, label in enumerate(labels):
        y = base
        for s in series:
            bar = s.values[i] / peak * height
            if bar > 0:
                pdf.set_fill_color(*s.color)
                pdf.rect(x + i * step + step * 0.1, y - bar, step * 0.8, bar, style="F")
                y -= bar
        if i % every == 0:
            pdf.set_xy(x + i * step, base + 0.5)
            pdf.cell(step * every, 3, latin1(label[:14]))


def _patterns(pdf: FPDF, report: AnalyticsReport) -> None:
    _subheading(pdf, "Patterns and recommendations")
    pdf.set_font("Helvetica", "", 9)
    for p in report.patterns:
        text = f"{p.title} (confidence {p.confidence * 100:.0f} %): {p.detail}"
        pdf.multi_cell(0, 5, latin1(text), new_x="LMARGIN", new_y="NEXT")
    if not report.patterns:
        pdf.multi_cell(0, 5, "No notable patterns in this period.", new_x="LMARGIN", new_y="NEXT")
    for note in report.notes:
        pdf.multi_cell(0, 5, latin1(note), new_x="LMARGIN", new_y="NEXT")
    for r in report.recommendations:
        pdf.multi_cell(0, 5, latin1(f"- {r}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _subheading(pdf: FPDF, text: str) -> None:
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, latin1(text), new_x="LMARGIN", new_y="NEXT")


def _table(pdf: FPDF, table: Table) -> None:
    _subheading(pdf, table.title)
    pdf.set_font("Helvetica", "", 8)
    if not table.rows:
        pdf.cell(0, 5, "No data.", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        return
    heading = FontFace(emphasis="BOLD", fill_color=_LIGHT)
    with pdf.table(headings_style=heading, line_height=5, text_align="LEFT") as grid:
        for cells in [table.header, *table.rows]:
            row = grid.row()
            for cell in cells:
                row.cell(latin1(cell))
    pdf.ln(3)
