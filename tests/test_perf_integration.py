"""The optimizer on the simulator: real servers, real downloads, convergence within bounded time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from test_download_support import KiB, MiB, fast_settings, request_for

from civitai_tui.download.downloader import FileDownloader
from civitai_tui.events import EventBus, MetricsSample, OptimizerDecision
from civitai_tui.perf import OptimizationConfig, OptimizationMode, PerformanceOptimizer
from civitai_tui.perf.controls import DownloaderControls
from civitai_tui.perf.memory import HostMemory
from civitai_tui.perf.probe import Phase
from civitai_tui.perf.session import create_optimized_session
from civitai_tui.simulator.catalogue import SimFile
from civitai_tui.simulator.server import Simulator

FAST = OptimizationConfig(probe_interval=0.3, sample_interval=0.3, interval=1.0)


def big_file(sim: Simulator) -> SimFile:
    return next(f for f in sim.catalogue.files() if f.name == "largeRealism_v10.safetensors")


@asynccontextmanager
async def downloading(
    sim: Simulator,
    dest: Path,
    config: OptimizationConfig = FAST,
    memory: HostMemory | None = None,
) -> AsyncIterator[tuple[PerformanceOptimizer, list[OptimizerDecision]]]:
    """The 128 MiB file downloading under an optimizer; cancelled on exit."""
    bus = EventBus()
    decisions: list[OptimizerDecision] = []
    bus.add_callback(lambda e: decisions.append(e) if isinstance(e, OptimizerDecision) else None)
    holder: list[FileDownloader] = []
    optimizer = PerformanceOptimizer(bus, DownloaderControls(lambda: holder[0]), config, memory)
    settings = fast_settings(min_split=256 * KiB, stall_timeout=10.0)
    async with create_optimized_session(optimizer) as session:
        holder.append(FileDownloader(session, bus, settings))
        await optimizer.start()
        task = asyncio.create_task(holder[0].download(request_for(sim, big_file(sim), dest)))
        try:
            yield optimizer, decisions
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await optimizer.stop()


async def until(check: Callable[[], bool], timeout: float) -> float:
    """Poll ``check`` until true; returns the seconds it took (fails at the deadline)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not check():
        if loop.time() - started > timeout:
            raise AssertionError("not converged before the deadline")
        await asyncio.sleep(0.05)
    return loop.time() - started


def budget(optimizer: PerformanceOptimizer) -> int:
    probes = list(optimizer.probes.values())
    return probes[0].budget if probes else 0


@pytest.mark.slow
async def test_connections_rise_on_a_per_connection_cap(sim: Simulator, tmp_path: Path) -> None:
    sim.faults.set(per_connection_rate=1 * MiB)
    async with downloading(sim, tmp_path) as (optimizer, decisions):
        await until(lambda: budget(optimizer) >= 16, timeout=12)
        # ... and the transfer really opens them
        await until(lambda: optimizer.tracker.connections() >= 8, timeout=5)
    rises = [d for d in decisions if d.setting == "connections" and (d.old or 0) < d.new]
    assert rises and all("probing" in d.reason or "first file" in d.reason for d in rises)


@pytest.mark.slow
async def test_connections_stay_low_without_a_per_connection_cap(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.faults.set(total_rate=8 * MiB)  # a shared link limit: more connections add nothing
    async with downloading(sim, tmp_path) as (optimizer, decisions):

        def settled_low() -> bool:
            probe = next(iter(optimizer.probes.values()), None)
            return (
                probe is not None
                and probe.phase is Phase.HOLD
                and probe.budget <= FAST.start_connections
                and any("no gain" in d.reason for d in decisions)
            )

        # The first reading may catch the ramp-up, so a probe can look good at first;
        # within a few probes the budget is back down, and held there.
        await until(settled_low, timeout=15)
        await asyncio.sleep(1.0)  # held, not creeping back up at once
        assert budget(optimizer) <= FAST.start_connections


@pytest.mark.slow
async def test_connections_fall_on_503s_and_stay_under_the_limit(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.faults.set(per_connection_rate=1 * MiB, max_connections=3)
    async with downloading(sim, tmp_path) as (optimizer, decisions):
        await until(lambda: any("HTTP 503" in d.reason for d in decisions), timeout=8)
        assert budget(optimizer) <= 2
        probe = next(iter(optimizer.probes.values()))
        await asyncio.sleep(2.0)
        assert probe.budget <= 3  # held below the limit: no second 503 storm
        assert probe.limit(asyncio.get_running_loop().time()) < 32  # the throttled count
        snapshot = optimizer.snapshot()
    host = snapshot["hosts"][probe.host]
    assert host["health"]["throttled"] >= 1 and host["connections"] <= 3
    assert any(r["kind"] == "throttled" for r in snapshot["recommendations"])


@pytest.mark.slow
async def test_metrics_and_mode_switch_reach_the_bus(sim: Simulator, tmp_path: Path) -> None:
    sim.faults.set(per_connection_rate=2 * MiB)
    async with downloading(sim, tmp_path) as (optimizer, decisions):
        bus_metrics: list[MetricsSample] = []
        optimizer.bus.add_callback(
            lambda e: bus_metrics.append(e) if isinstance(e, MetricsSample) else None
        )
        await until(lambda: any(m.throughput > 0 and m.connections for m in bus_metrics), 5)
        optimizer.set_mode(OptimizationMode.MINIMAL)
        await until(lambda: budget(optimizer) <= 2, timeout=1)
        assert optimizer.config.mode is OptimizationMode.MINIMAL
    mode = [d for d in decisions if d.setting == "mode"]
    assert mode and (mode[0].old, mode[0].new) == ("adaptive", "minimal")
    assert all(d.reason for d in decisions)


@pytest.mark.slow
async def test_a_settled_budget_is_learned_and_the_next_run_starts_there(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.faults.set(per_connection_rate=1 * MiB)
    path = tmp_path / "perf_hosts.json"

    def learned_budget() -> int:
        return max((h.budget for h in HostMemory(path).hosts.values()), default=0)

    async with downloading(sim, tmp_path / "a", memory=HostMemory(path)):
        await until(lambda: learned_budget() >= 16, timeout=15)  # saved while it runs
    (learned,) = HostMemory(path).hosts.values()
    assert learned.budget >= 16 and learned.rate > 0
    async with downloading(sim, tmp_path / "b", memory=HostMemory(path)) as (optimizer, decisions):
        await until(lambda: bool(optimizer.probes), timeout=5)
        probe = next(iter(optimizer.probes.values()))
        assert probe.budget == learned.budget and not probe.cold
    assert "learned on an earlier run" in decisions[0].reason
