"""PerformanceOptimizer: samples, classifies, decides, and tells the bus why.

It listens to the downloader's events (a synchronous bus callback that only
records), and runs one loop: every ``probe_interval`` the per-host probes, every
``sample_interval`` a system and throughput sample (``MetricsSample``) and the
network condition (``NetworkConditionChanged``, adaptive retry base), every
``interval`` the seed's tables (connections from CPU/memory, chunk size from the
network). Every change is an ``OptimizerDecision`` with its reason, kept in a
history for the UI. A refusal (429/503, a connection closed before any answer)
starts a burst the host's probe watches to learn the server's connection limit.
With a :class:`HostMemory`, settled budgets, connection limits and whether each
connection is capped are kept for the next run: a known host starts at its
learned budget (per file on a capped host, for every file that starts), under
its learned limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import replace
from typing import Any

from civitai_tui.aio import wait_event
from civitai_tui.events import (
    Event,
    EventBus,
    FileCompleted,
    FileFailed,
    FileProgress,
    FileStarted,
    MetricsSample,
    NetworkConditionChanged,
    OptimizerDecision,
    RetryScheduled,
)
from civitai_tui.perf.config import OptimizationConfig
from civitai_tui.perf.controls import Controls
from civitai_tui.perf.health import HealthBoard, Trouble, classify_retry
from civitai_tui.perf.memory import HostMemory
from civitai_tui.perf.modes import OptimizationMode, parse_mode
from civitai_tui.perf.monitor import SystemMonitor, SystemSample, ThroughputTracker
from civitai_tui.perf.network import ConditionWindow, NetworkCondition
from civitai_tui.perf.probe import SETTLE_TICKS, HostProbe, Phase, Step
from civitai_tui.perf.recommend import recommendations
from civitai_tui.perf.retry import DEFAULT_BASE_DELAY, base_delay_for
from civitai_tui.perf.tables import Action, next_chunk_size, system_verdict

log = logging.getLogger(__name__)

DECISIONS_KEPT = 200


class PerformanceOptimizer:
    """Tunes connections per host, the read buffer and retry delays from measurements."""

    def __init__(
        self,
        bus: EventBus,
        controls: Controls,
        config: OptimizationConfig | None = None,
        memory: HostMemory | None = None,
    ) -> None:
        self.bus = bus
        self.memory = memory
        self.controls = controls
        self.config = config or OptimizationConfig()
        self.monitor = SystemMonitor()
        self.tracker = ThroughputTracker()
        self.health = HealthBoard()
        self.probes: dict[str, HostProbe] = {}
        self.condition: NetworkCondition | None = None
        self.retry_base = DEFAULT_BASE_DELAY
        #: Bytes/s the speed limit allows (0: none): no probe goes past it.
        self.rate_cap = 0.0
        self.decisions: deque[OptimizerDecision] = deque(maxlen=DECISIONS_KEPT)
        self.samples: deque[SystemSample] = deque(maxlen=60)
        self.conditions: deque[NetworkCondition] = deque(maxlen=600)
        self.last_metrics: MetricsSample | None = None
        self._window = ConditionWindow()
        self._per_file: dict[str, int] = {}
        self._host_errors: dict[str, int] = {}
        self._unsubscribe: Any = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # a file started: probe ticks are needed again

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._hold_new_hosts()
        self._unsubscribe = self.bus.add_callback(self._on_event)
        self._task = asyncio.create_task(self._run(), name="performance-optimizer")

    async def stop(self) -> None:
        self._remember()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --------------------------------------------------------------- settings
    def set_mode(self, mode: OptimizationMode | str) -> None:
        """Switch modes now; every host's probe restarts within the new limits."""
        self.update_config(replace(self.config, mode=parse_mode(mode)))

    def update_config(self, config: OptimizationConfig) -> None:
        """Apply new ``performance.*`` settings to running downloads."""
        old, self.config = self.config, config
        if old.mode is not config.mode:
            self._decide("mode", str(old.mode), str(config.mode), "mode changed")
        now = _now()
        limits = config.limits
        for host, probe in self.probes.items():
            step = probe.reconfigure(
                config.connection_ceiling,
                config.start_connections,
                limits.min_gain,
                limits.probe,
                now,
                shed_probe=limits.shed_probe,
            )
            probe.keep_share = limits.keep_share
            self._apply_step(host, step)
        self._hold_new_hosts()
        self._apply_chunk()

    def _hold_new_hosts(self) -> None:
        """A mode's per-host maximum holds a host's first files too (before any probe)."""
        held = self.config.limits.max_connections is not None
        self.controls.set_default_host_budget(self.config.connection_ceiling if held else None)

    def set_rate_cap(self, rate: float) -> None:
        """The speed limit in force (bytes/s, 0: none): probes stop adding connections there."""
        self.rate_cap = rate
        for probe in self.probes.values():
            probe.rate_cap = rate

    # ------------------------------------------------------------ bus events
    def _on_event(self, event: Event) -> None:
        if isinstance(event, FileProgress):
            self.tracker.progress(
                event.key, event.done, event.connections, event.serving, event.stuck
            )
        elif isinstance(event, FileStarted):
            self._file_started(event)
            self._wake.set()
        elif isinstance(event, FileCompleted | FileFailed):
            host = self.tracker.host_of(event.file.key)
            self.tracker.finished(event.file.key)
            if host:
                self._share(host)
        elif isinstance(event, RetryScheduled):
            self._retry(event)

    def _file_started(self, event: FileStarted) -> None:
        host = event.file.host
        self.tracker.started(event.file.key, host, event.resumed_bytes)
        if host not in self.probes:
            limits = self.config.limits
            learned = self.memory.hosts.get(host) if self.memory and limits.probe else None
            probe = self.probes[host] = HostProbe(
                host,
                (learned.per_file or learned.budget) if learned else self.config.start_connections,
                self.config.connection_ceiling,
                limits.min_gain,
                probing=limits.probe,
                shed_probe=limits.shed_probe,
                keep_share=limits.keep_share,
                cold=learned is None,
                capped=bool(learned and learned.per_file),
                conn_limit=learned.limit if learned else None,
                rate_cap=self.rate_cap,
            )
            why = f"first file from {host}"
            if learned:
                why += f"; {learned.describe()} learned on an earlier run"
                probe.limit_why = f"learned on an earlier run: limit {learned.limit}"
            self._decide("connections", None, probe.budget, why, host)
        self._share(host)

    def _retry(self, event: RetryScheduled) -> None:
        host = self.tracker.host_of(event.key)
        if not host:
            return
        trouble = classify_retry(event.status, event.reason)
        self.health.record(host, trouble)
        probe = self.probes.get(host)
        if probe is None:
            return
        if trouble in (Trouble.THROTTLED, Trouble.REFUSED):
            what = f"HTTP {event.status}" if event.status else "connections closed unanswered"
            probe.refused(what, self.tracker.serving(host), _now())
        elif trouble in (Trouble.RESET, Trouble.STALLED):
            self._host_errors[host] = self._host_errors.get(host, 0) + 1

    # ------------------------------------------------------------------- loop
    async def _run(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        next_sample = next_table = loop.time()
        while True:
            if self.tracker.active():
                await asyncio.sleep(cfg.probe_interval)
            else:  # nothing to probe: wake for the next sample, or when a file starts
                await self._idle(next_sample - loop.time())
            now = loop.time()
            try:
                self._probe_tick(now)
                if now >= next_sample:
                    next_sample = now + cfg.sample_interval
                    self._sample()
                if now >= next_table:
                    next_table = now + self.config.interval
                    self._tables(now)
            except Exception:  # the optimizer must never take downloads down
                log.exception("optimizer tick failed")
            cfg = self.config

    async def _idle(self, seconds: float) -> None:
        """Sleep up to ``seconds`` (at least a probe interval) or until a file starts.

        Ten probe ticks a second cost an idle engine about 20 CPU-s an hour on a
        VM (each wake-up is a timer interrupt and two context switches); idle,
        it wakes only for the 1 Hz system sample.
        """
        self._wake.clear()
        await wait_event(self._wake, max(self.config.probe_interval, seconds))

    def _probe_tick(self, now: float) -> None:
        for host, probe in self.probes.items():
            probe.settle_ticks = SETTLE_TICKS + int(
                self.health.host(host).ttfb / self.config.probe_interval
            )
            errors = self._host_errors.pop(host, 0)
            if errors and self.config.limits.probe:
                self._apply_step(host, probe.connection_errors(errors, now))
            rate, serving = self.tracker.host_rate(host), self.tracker.serving(host)
            usable = self.tracker.usable(host)
            self._apply_step(host, probe.tick(rate, serving, now, usable))
            self._share(host)

    def _sample(self) -> None:
        system = self.monitor.sample()
        self.samples.append(system)
        total = self.tracker.sample()
        connections = self.tracker.connections()
        self.last_metrics = MetricsSample(
            cpu_percent=system.cpu_percent,
            memory_percent=system.memory_percent,
            engine_cpu_percent=system.engine_cpu_percent,
            engine_rss=system.engine_rss,
            throughput=total,
            connections=connections,
        )
        self.bus.publish(self.last_metrics)
        condition = self._window.add(total, connections > 0, self.config.thresholds)
        if condition is not None:
            self._classify(condition)

    def _classify(self, condition: NetworkCondition) -> None:
        self.conditions.append(condition)
        if condition is self.condition:
            return
        old, self.condition = self.condition, condition
        self.bus.publish(
            NetworkConditionChanged(
                old=str(old) if old else None, new=str(condition), mean_speed=self._window.mean
            )
        )
        if self.config.enable_adaptive_retry:
            base = base_delay_for(condition)
            if base != self.retry_base:
                self._decide(
                    "retry_base_delay", self.retry_base, base, f"the network is {condition}"
                )
                self.retry_base = base
                self.controls.set_retry_base(base)

    def _tables(self, now: float) -> None:
        wanted = max(1, round(self.config.interval / self.config.sample_interval))
        recent = list(self.samples)[-wanted:]
        if len(recent) >= wanted and self.tracker.active():  # a full interval of samples
            cpu = sum(s.cpu_percent for s in recent) / len(recent)
            memory = sum(s.memory_percent for s in recent) / len(recent)
            engine = sum(s.engine_cpu_percent for s in recent) / len(recent)
            verdict = system_verdict(cpu, memory, self.condition, self.config, engine)
            for host, probe in self.probes.items():
                if self.tracker.active(host):
                    step = probe.system(
                        verdict.action is Action.SHED,
                        verdict.action is Action.GROW,
                        verdict.reason,
                        now,
                    )
                    self._apply_step(host, step)
        self._apply_chunk()
        self._remember()

    def _remember(self) -> None:
        """Keep each probed host's settled budget for the next run (``HostMemory``)."""
        if self.memory is None or not self.config.limits.probe:
            return
        for host, probe in self.probes.items():
            if not probe.cold and probe.history:
                per_file = -(-probe.settled_budget // probe.files) if probe.capped else None
                self.memory.learn(
                    host,
                    probe.settled_budget,
                    probe.history[-1].rate,
                    limit=probe.conn_limit,
                    per_file=per_file,
                )
        self.memory.save()

    # --------------------------------------------------------------- actions
    def _apply_step(self, host: str, step: Step | None) -> None:
        if step is None:
            return
        if step.reason:
            self._decide("connections", step.old, step.new, step.reason, host)
        self._share(host, force=True)

    def _share(self, host: str, force: bool = False) -> None:
        """Split the host's budget among its active files."""
        probe = self.probes.get(host)
        if probe is None:
            return
        files = max(1, len(self.tracker.active(host)))
        if files != probe.files:
            step = probe.files_changed(files, _now())
            if step is not None:
                self._decide("connections", step.old, step.new, step.reason, host)
                force = True
        if probe.phase is Phase.BURST and not force:
            return  # the connections the burst leaves decide the next count, not the files
        # Under a connection limit (the server's, or the mode's per-host maximum) the
        # downloader holds all files to it (a file may then use a slot another cannot:
        # round up); otherwise never above the budget.
        held = probe.conn_limit is not None or self.config.limits.max_connections is not None
        total = probe.limit() if held else None
        per_file = max(1, -(-probe.budget // files) if total else probe.budget // files)
        if force or self._per_file.get(host) != per_file:
            self._per_file[host] = per_file
            self.controls.set_host_connections(host, per_file, total)

    def _apply_chunk(self) -> None:
        current = self.controls.chunk_size()
        if current is None:
            return
        size, reason = next_chunk_size(current, self.condition, self.config)
        if size != current:
            self.controls.set_chunk_size(size)
            self._decide("chunk_size", current, size, reason)

    def _decide(self, setting: str, old: Any, new: Any, reason: str, host: str = "") -> None:
        decision = OptimizerDecision(setting=setting, old=old, new=new, reason=reason, host=host)
        self.decisions.append(decision)
        self.bus.publish(decision)
        log.info("optimizer: %s %s -> %s (%s) %s", setting, old, new, reason, host)

    # ---------------------------------------------------------------- report
    def snapshot(self, decisions: int = 50) -> dict[str, Any]:
        """Everything the UI shows: mode, hosts, chunk size, network, decisions, advice."""
        hosts = {}
        for host, probe in self.probes.items():
            series = self.tracker.per_host.get(host)
            hosts[host] = {
                "connections": probe.budget,
                "per_file": self._per_file.get(host),
                "limit": probe.conn_limit,
                "limit_why": probe.limit_why,
                "capped": probe.capped,
                "files": probe.files,
                "phase": str(probe.phase),
                "throughput": series.ewma if series else 0.0,
                "best": vars(probe.best) if probe.best else None,
                "health": self.health.host(host).to_dict(),
            }
        metrics = self.last_metrics
        return {
            "mode": str(self.config.mode),
            "limits": {
                "max_connections": self.config.connection_ceiling,
                "start_connections": self.config.start_connections,
                "probe": self.config.limits.probe,
                "cpu_threshold": self.config.shed_cpu,
                "memory_threshold": self.config.shed_memory,
                "min_chunk_size": self.config.min_chunk_size,
                "max_chunk_size": self.config.max_chunk_size,
            },
            "hosts": hosts,
            "chunk_size": self.controls.chunk_size(),
            "rate_cap": self.rate_cap,
            "network_condition": str(self.condition) if self.condition else None,
            "retry_base_delay": self.retry_base,
            "metrics": metrics.to_dict() if metrics else None,
            "throughput_history": list(self.tracker.total.history),
            "decisions": [d.to_dict() for d in list(self.decisions)[-decisions:]],
            "recommendations": [
                r.to_dict()
                for r in recommendations(self.probes, self.samples, self.conditions, self.config)
            ],
        }


def _now() -> float:
    return asyncio.get_running_loop().time()
