"""The Performance screen: live graphs, the optimizer's state and its decisions.

Graphs redraw once a second and only while this screen is current (the timer
starts on resume and stops on suspend). The optimizer's mode, connections and
chunk size come from ``GET /v1/performance``; an engine without it shows
"no data yet".
"""

from __future__ import annotations

from typing import Any

import psutil
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static

from civitai_tui.errors import CivitaiTuiError
from civitai_tui.security.display import markup_safe
from civitai_tui.tui.screens.base import EngineScreen
from civitai_tui.tui.screens.modals import SpeedLimitScreen
from civitai_tui.tui.state import EngineState, PerfView
from civitai_tui.tui.themes import JOB_GRAPH_VARIABLES
from civitai_tui.tui.widgets.graph import Series, TimeGraph
from civitai_tui.tui.widgets.mode_bar import ModeBar
from civitai_tui.units import format_speed, human_bytes, human_speed

REDRAW_SECONDS = 1.0
POLL_SECONDS = 2.0
TOP_JOBS = len(JOB_GRAPH_VARIABLES)
#: Below this size the four graphs would be a row or two each: show one, ``g`` picks it.
GRID_MIN_SIZE = (100, 36)
GRAPHS = ("graph-throughput", "graph-cpu", "graph-memory", "graph-connections")
MIB = 1024 * 1024
TOTAL_MEMORY = psutil.virtual_memory().total


def optimizer_line(perf: PerfView) -> str:
    """Mode, connections, chunk size and network condition, or "no data yet"."""
    opt = perf.optimizer
    condition = perf.condition or (opt or {}).get("network_condition") or "unknown"
    if not opt:
        return f"optimizer: no data yet · network: {markup_safe(str(condition))}"
    chunk = opt.get("chunk_size")
    return (
        f"mode [b]{markup_safe(str(opt.get('mode', '?')).upper())}[/b] · "
        f"connections {connections_text(opt)} · "
        f"chunk {human_bytes(chunk) if isinstance(chunk, int) else '?'} · "
        f"speed limit {format_speed(int(opt.get('rate_cap') or 0))} · "
        f"network: {markup_safe(str(condition))}"
    )


def hosts_line(perf: PerfView) -> str:
    """Per host: the connection budget, the connection limit learned (if any) and why."""
    hosts = (perf.optimizer or {}).get("hosts") or {}
    parts = []
    for host, v in hosts.items():
        text = f"{markup_safe(host)}: budget {v.get('connections', '?')}"
        if v.get("per_file"):
            text += f" ({v['per_file']}/file{', capped' if v.get('capped') else ''})"
        limit = v.get("limit")
        text += f", limit {limit} ({markup_safe(str(v.get('limit_why') or ''))})" if limit else ""
        parts.append(text)
    return " · ".join(parts) or "no host yet"


def connections_text(optimizer: dict[str, Any]) -> str:
    """Connection budget per host (``/v1/performance`` ``hosts``), or the flat value."""
    hosts = optimizer.get("hosts") or {}
    if hosts:
        return ", ".join(f"{markup_safe(h)} {v.get('connections', '?')}" for h, v in hosts.items())
    return str(optimizer.get("connections", "?"))


def latest_line(perf: PerfView) -> str:
    if not perf.samples:
        return "no samples yet"
    s = perf.samples[-1]
    return (
        f"throughput {human_speed(s.throughput) or '0 B/s'} · connections {s.connections} · "
        f"CPU {s.cpu:.0f}% (engine {s.engine_cpu:.0f}%) · memory {s.memory:.0f}% "
        f"(engine {human_bytes(s.engine_rss)})"
    )


def colour_slots(previous: dict[str, int], top: list[str]) -> dict[str, int]:
    """A colour slot for each job in ``top``; a job keeps its slot while it stays there."""
    slots = {job_id: previous[job_id] for job_id in top if job_id in previous}
    free = iter(sorted(set(range(TOP_JOBS)) - set(slots.values())))
    return {job_id: slots[job_id] if job_id in slots else next(free) for job_id in top}


def decision_rows(perf: PerfView) -> list[tuple[str, ...]]:
    """Newest first: setting, old → new, reason."""
    decisions = list(perf.decisions)
    if perf.optimizer:
        decisions += [d for d in perf.optimizer.get("decisions", []) if d not in decisions]
    return [
        (str(d.get("setting", "")), f"{d.get('old')} → {d.get('new')}", str(d.get("reason", "")))
        for d in decisions
    ]


class PerformanceScreen(EngineScreen):
    """Mode 2."""

    AUTO_FOCUS = "#decisions"
    DEFAULT_CSS = """
    PerformanceScreen #perf-status { height: 3; padding: 0 1; background: $panel; }
    PerformanceScreen Grid { grid-size: 2 2; height: 1fr; min-height: 12; }
    PerformanceScreen Grid.-single { grid-size: 1 1; }
    PerformanceScreen Grid.-single TimeGraph { display: none; }
    PerformanceScreen Grid.-single TimeGraph.-shown { display: block; }
    PerformanceScreen #decisions { height: 7; }
    """
    BINDINGS = [
        Binding(
            "s",
            "mode('speed')",
            "Speed",
            id="perf.mode-speed",
            tooltip="Most connections and the largest chunks.",
        ),
        Binding(
            "e",
            "mode('efficiency')",
            "Efficiency",
            id="perf.mode-efficiency",
            tooltip="Fewer connections, gentle on CPU.",
        ),
        Binding(
            "m",
            "mode('minimal')",
            "Minimal",
            id="perf.mode-minimal",
            tooltip="One connection per file, least load.",
        ),
        Binding(
            "a",
            "mode('adaptive')",
            "Adaptive",
            id="perf.mode-adaptive",
            tooltip="Follow the network and the machine.",
        ),
        Binding(
            "l",
            "speed_limit",
            "Speed limit",
            id="perf.speed-limit",
            tooltip="Limit the speed of all downloads (download.max_speed), live.",
        ),
        Binding(
            "g",
            "next_graph",
            "Next graph",
            id="perf.next-graph",
            tooltip="Show the next graph (small terminals show one at a time).",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._live_timers: list[Timer] = []
        self._job_slots: dict[str, int] = {}
        self.shown_graph = GRAPHS[0]

    def compose(self) -> ComposeResult:
        yield ModeBar("performance")
        yield Static("", id="perf-status")
        with Grid():
            yield TimeGraph("Throughput", "MiB/s", id="graph-throughput")
            yield TimeGraph("CPU", "%", id="graph-cpu")
            yield TimeGraph("Memory", "%", id="graph-memory")
            yield TimeGraph("Connections", "n", id="graph-connections")
        table: DataTable[str] = DataTable(id="decisions", cursor_type="row")
        table.add_columns("Setting", "Change", "Reason")
        yield table
        yield Footer()

    def on_resize(self) -> None:
        self._lay_out_graphs()

    @property
    def single_graph(self) -> bool:
        """True when the screen is too small for four readable graphs."""
        width, height = self.size
        return width < GRID_MIN_SIZE[0] or height < GRID_MIN_SIZE[1]

    def _lay_out_graphs(self) -> None:
        self.query_one(Grid).set_class(self.single_graph, "-single")
        for graph in self.query(TimeGraph):
            graph.set_class(graph.id == self.shown_graph, "-shown")
        self.refresh_bindings()

    def action_next_graph(self) -> None:
        self.shown_graph = GRAPHS[(GRAPHS.index(self.shown_graph) + 1) % len(GRAPHS)]
        self._lay_out_graphs()
        self._plot_graphs(self.tui.state)

    def on_screen_resume(self) -> None:
        # EngineScreen's own handler repaints (Textual calls every class's handler:
        # calling super() here too painted every graph twice per mode switch).
        self._live_timers = [
            self.set_interval(REDRAW_SECONDS, self._redraw),
            self.set_interval(POLL_SECONDS, self._poll),
        ]
        self._poll()

    def on_screen_suspend(self) -> None:
        for timer in self._live_timers:
            timer.stop()
        self._live_timers = []

    def _poll(self) -> None:
        self.run_worker(self.tui.bridge.performance, group="perf-poll", exclusive=True)

    def _redraw(self) -> None:
        if self.app.is_running and self.tui.state.perf.dirty:  # never while shutting down
            self.sync(self.tui.state, full=True)

    def sync(self, state: EngineState, *, full: bool = False) -> None:
        """Graphs change only here, at most once per REDRAW_SECONDS (the app never calls it)."""
        if not full:
            return
        perf = state.perf
        perf.dirty = False
        self.sub_title = state.connection
        self.query_one("#perf-status", Static).update(
            f"{optimizer_line(perf)}\n{hosts_line(perf)}\n{latest_line(perf)}"
        )
        # The graphs (plotext: the slow part) after this frame, and only those shown:
        # a mode switch paints the screen at once, its graphs a moment later.
        self.call_after_refresh(self._plot_graphs, state)
        table = self.query_one("#decisions", DataTable)
        table.clear()
        table.add_rows(decision_rows(perf))

    def _plot_graphs(self, state: EngineState) -> None:
        samples = list(state.perf.samples)
        now = samples[-1].ts if samples else 0.0
        xs = [s.ts - now for s in samples]
        top = sorted(state.perf.job_speeds.items(), key=lambda kv: -(kv[1][-1][1] if kv[1] else 0))[
            :TOP_JOBS
        ]
        self._job_slots = colour_slots(self._job_slots, [job_id for job_id, _ in top])
        lines = [Series("total", [s.throughput / MIB for s in samples], "graph-throughput")]
        for job_id, series in top:
            values = [v / MIB for _, v in series][-len(xs) :] if xs else []
            name = state.jobs[job_id].name[:16] if job_id in state.jobs else job_id
            colour = JOB_GRAPH_VARIABLES[self._job_slots[job_id]]
            lines.append(Series(name, [0.0] * (len(xs) - len(values)) + values, colour))
        plots = {
            "graph-throughput": lines,
            "graph-cpu": [
                Series("machine", [s.cpu for s in samples], "graph-cpu"),
                Series("engine", [s.engine_cpu for s in samples], "graph-engine"),
            ],
            "graph-memory": [
                Series("machine", [s.memory for s in samples], "graph-memory"),
                Series(
                    "engine", [100 * s.engine_rss / TOTAL_MEMORY for s in samples], "graph-engine"
                ),
            ],
            "graph-connections": [
                Series("open", [s.connections for s in samples], "graph-connections")
            ],
        }
        for graph_id, series in plots.items():
            if not self.single_graph or graph_id == self.shown_graph:
                self.query_one(f"#{graph_id}", TimeGraph).plot(xs, series)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "mode":
            return hasattr(self.tui.client, "set_mode")
        if action == "speed_limit":
            return hasattr(self.tui.client, "set_config")
        if action == "next_graph":
            return self.single_graph
        return True

    def action_mode(self, mode: str) -> None:
        async def switch() -> None:
            try:
                await self.tui.client.set_mode(mode)  # type: ignore[attr-defined]
            except CivitaiTuiError as err:
                self.notify(f"mode {mode}: {markup_safe(err.message)}", severity="error")
                return
            self.notify(f"optimizer mode: {mode.upper()}")
            await self.tui.bridge.performance()
            self.sync(self.tui.state, full=True)

        self.run_worker(switch(), group="perf-mode", exclusive=True, exit_on_error=False)

    def action_speed_limit(self) -> None:
        current = format_speed(int((self.tui.state.perf.optimizer or {}).get("rate_cap") or 0))

        async def apply(text: str | None) -> None:
            if text is None:
                return
            try:
                await self.tui.client.set_config("download.max_speed", text)  # type: ignore[attr-defined]
            except CivitaiTuiError as err:
                self.notify(f"speed limit: {markup_safe(err.message)}", severity="error")
                return
            await self.tui.bridge.performance()
            rate = (self.tui.state.perf.optimizer or {}).get("rate_cap") or 0
            self.notify(f"speed limit: {format_speed(int(rate))}")
            self.sync(self.tui.state, full=True)

        def chosen(text: str | None) -> None:
            self.run_worker(apply(text), group="perf-limit", exclusive=True, exit_on_error=False)

        self.app.push_screen(SpeedLimitScreen(current), chosen)
