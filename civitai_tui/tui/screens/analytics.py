"""The Analytics screen: metric cards, trends, patterns, charts, period and export.

The numbers come from the engine's analyzer (``GET /v1/analytics?days=N``);
``e`` asks the engine to write an HTML, JSON or PDF report and shows its path.
"""

from __future__ import annotations

import time
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.color import Color
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import var
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot

from civitai_tui.errors import CivitaiTuiError
from civitai_tui.security.display import markup_safe
from civitai_tui.tui.screens.base import EngineScreen
from civitai_tui.tui.screens.modals import ExportScreen
from civitai_tui.tui.state import EngineState
from civitai_tui.tui.widgets.mode_bar import ModeBar
from civitai_tui.units import human_bytes, human_speed

PERIODS = {"day": 1, "week": 7, "month": 30}
TICKS = 8
EXTENSIONS = {"html": "html", "json": "json", "pdf": "pdf"}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def cards(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, value) of each metric card."""
    totals, speed = report["totals"], report["speed"]
    return [
        ("Downloads", f"{totals['completed']} ok / {totals['failed']} failed"),
        ("Success rate", _pct(totals["success_rate"])),
        ("Bytes", human_bytes(totals["bytes"])),
        ("Mean speed", human_speed(speed["mean"] or 0) or "-"),
        ("p95 speed", human_speed(speed["p95"] or 0) or "-"),
    ]


def trend_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    arrows = {"up": "↑", "down": "↓", "flat": "→"}
    return [
        (
            t["metric"],
            "-"
            if t["change_pct"] is None
            else f"{arrows.get(t['direction'], '')} {t['change_pct']:+.1f}%",
            t["significance"],
        )
        for t in report["trends"]
    ]


def patterns_text(report: dict[str, Any]) -> str:
    """Patterns with their advice, the other advice once, then what is missing and why.

    The same rules as the reports: the analyzer gives advice only with enough
    data and never lists the optimizer's decisions as advice (they are on the
    Performance screen).
    """
    lines, given = [], set()
    for p in report["patterns"]:
        title, detail = markup_safe(p["title"]), markup_safe(p["detail"])
        lines.append(f"[b]{title}[/b] ({100 * p['confidence']:.0f}%): {detail}")
        lines.extend(f"  → {markup_safe(r)}" for r in p.get("recommendations", []))
        given.update(p.get("recommendations", []))
    lines.extend(f"→ {markup_safe(r)}" for r in report.get("recommendations", []) if r not in given)
    if not report["patterns"]:
        lines.insert(0, "no patterns found in this period")
    lines.extend(f"[dim]{markup_safe(n)}[/dim]" for n in report.get("notes", []))
    return "\n".join(lines)


class AnalyticsScreen(EngineScreen):
    """Mode 3."""

    AUTO_FOCUS = "#trends"
    DEFAULT_CSS = """
    AnalyticsScreen VerticalScroll { scrollbar-gutter: stable; }
    AnalyticsScreen #cards { height: 4; }
    AnalyticsScreen .card { width: 1fr; border: round $primary; padding: 0 1; height: 4; }
    AnalyticsScreen #charts { height: 12; }
    AnalyticsScreen #charts PlotextPlot { width: 1fr; }
    AnalyticsScreen #trends { height: auto; max-height: 10; width: 1fr; }
    AnalyticsScreen #analytics-status { height: 1; padding: 0 1; background: $panel; }
    AnalyticsScreen #patterns { height: auto; padding: 0 1; }
    """
    BINDINGS = [
        Binding("d", "period('day')", "Day", id="analytics.day", tooltip="The last 24 hours."),
        Binding("w", "period('week')", "Week", id="analytics.week", tooltip="The last 7 days."),
        Binding("m", "period('month')", "Month", id="analytics.month", tooltip="The last 30 days."),
        Binding("r", "reload", "Reload", id="analytics.reload", tooltip="Ask the engine again."),
        Binding(
            "e",
            "export",
            "Export",
            id="analytics.export",
            tooltip="Write an HTML, JSON or PDF report.",
        ),
    ]

    period: var[str] = var("week")

    def __init__(self) -> None:
        super().__init__()
        self.report: dict[str, Any] | None = None
        self.last_export: str = ""

    def compose(self) -> ComposeResult:
        yield ModeBar("analytics")
        yield Static("", id="analytics-status")
        with VerticalScroll():
            with Horizontal(id="cards"):
                for i in range(5):
                    yield Static("", classes="card", id=f"card-{i}")
            with Horizontal(id="charts"):
                yield PlotextPlot(id="hourly")
                yield PlotextPlot(id="daily")
            table: DataTable[str] = DataTable(id="trends", cursor_type="row")
            table.add_columns("Trend", "Change", "Significance")
            yield table
            yield Static("", id="patterns")
        yield Footer()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_period(self, period: str) -> None:
        self.period = period
        self.action_reload()

    def action_reload(self) -> None:
        self.run_worker(self._load, group="analytics", exclusive=True, exit_on_error=False)

    async def _load(self) -> None:
        self._status(f"loading the last {self.period}…")
        try:
            self.report = await self.tui.client.analytics(PERIODS[self.period])
        except CivitaiTuiError as err:
            self._status(f"[$error]{markup_safe(err.message)}[/]")
            return
        self.sync(self.tui.state, full=True)

    def _status(self, text: str) -> None:
        export = f" · report: {markup_safe(self.last_export)}" if self.last_export else ""
        self.query_one("#analytics-status", Static).update(text + export)

    def sync(self, state: EngineState, *, full: bool = False) -> None:
        if not full or self.report is None:
            return
        report = self.report
        self._status(f"last {self.period} ({PERIODS[self.period]} d)")
        for i, (title, value) in enumerate(cards(report)):
            self.query_one(f"#card-{i}", Static).update(f"{title}\n[b]{value}[/b]")
        table = self.query_one("#trends", DataTable)
        table.clear()
        table.add_rows(trend_rows(report))
        self.query_one("#patterns", Static).update(patterns_text(report))
        self._bar("#hourly", "Finished by hour", [f"{h:02d}" for h in range(24)], report["hourly"])
        days = report["daily"][-14:]
        self._bar(
            "#daily",
            "Success % by day",
            [d["date"][5:] for d in days],
            [100 * (d["success_rate"] or 0) for d in days],
        )

    def _bar(self, selector: str, title: str, labels: list[str], values: list[float]) -> None:
        plot = self.query_one(selector, PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title if labels else f"{title}: no data yet")
        if labels:
            positions = list(range(1, len(labels) + 1))
            plt.bar(positions, values, color=Color.parse(plot.app.theme_variables["primary"]).rgb)
            step = max(1, len(labels) // TICKS)
            plt.xticks(positions[::step], labels[::step])
        plot.refresh()

    def action_export(self) -> None:
        days = PERIODS[self.period]

        def picked(fmt: str | None) -> None:
            if fmt:
                self.run_worker(self._export(fmt, days), group="export", exit_on_error=False)

        self.app.push_screen(ExportScreen(days), picked)

    async def _export(self, fmt: str, days: int) -> None:
        reports = self.tui.settings.reports_dir
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.tui.clock()))
        output = reports / f"civitai-report-{stamp}.{EXTENSIONS[fmt]}"
        self._status(f"writing the {fmt.upper()} report…")
        try:
            result = await self.tui.client.write_report(str(output), fmt, days)
        except CivitaiTuiError as err:
            self.notify(f"report: {markup_safe(err.message)}", severity="error")
            self._status(f"[$error]report failed: {markup_safe(err.message)}[/]")
            return
        self.last_export = result["path"]
        self.notify(f"report written: {markup_safe(result['path'])}")
        self._status(f"last {self.period} ({days} d)")
