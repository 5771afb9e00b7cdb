"""The optimizer on the simulator: real servers, real downloads, convergence within bounded time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from test_download_support import KiB, MiB, fast_settings, request_for

from civitai_tui.download.downloader import FileDownloader
from civitai_tui.events import (
    EventBus,
    FileInfo,
    FileStarted,
    MetricsSample,
    OptimizerDecision,
    RetryScheduled,
)
from civitai_tui.perf import OptimizationConfig, OptimizationMode, PerformanceOptimizer
from civitai_tui.perf.controls import DownloaderControls
from civitai_tui.perf.memory import HostMemory
from civitai_tui.perf.probe import Phase
from civitai_tui.perf.session import create_optimized_session
from civitai_tui.simulator.catalogue import SimFile
from civitai_tui.simulator.content import ContentKind, ContentSpec, FileContent
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
    files: int = 1,
) -> AsyncIterator[tuple[PerformanceOptimizer, list[OptimizerDecision]]]:
    """The 128 MiB file downloading under an optimizer (``files`` copies at once); cancelled
    on exit. ``optimizer.start_more(n)`` (attached here) starts ``n`` more copies."""
    bus = EventBus()
    decisions: list[OptimizerDecision] = []
    bus.add_callback(lambda e: decisions.append(e) if isinstance(e, OptimizerDecision) else None)
    holder: list[FileDownloader] = []
    optimizer = PerformanceOptimizer(bus, DownloaderControls(lambda: holder[0]), config, memory)
    settings = fast_settings(min_split=256 * KiB, stall_timeout=10.0)
    tasks: list[asyncio.Task[object]] = []

    def start_more(count: int) -> None:
        for _ in range(count):
            request = request_for(sim, big_file(sim), dest / f"copy{len(tasks)}")
            request.info = replace(request.info, key=f"copy{len(tasks)}")
            tasks.append(asyncio.create_task(holder[0].download(request)))

    async with create_optimized_session(optimizer) as session:
        holder.append(FileDownloader(session, bus, settings))
        await optimizer.start()
        start_more(files)
        optimizer.start_more = start_more  # type: ignore[attr-defined]
        optimizer.tasks = tasks  # type: ignore[attr-defined]
        try:
            yield optimizer, decisions
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await optimizer.stop()


async def until(check: Callable[[], bool], timeout: float = 5.0) -> float:
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
async def test_capped_connections_scale_with_the_files_on_the_host(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.faults.set(per_connection_rate=1 * MiB)
    async with downloading(sim, tmp_path) as (optimizer, decisions):
        await until(lambda: budget(optimizer) >= 16, timeout=10)
        optimizer.start_more(3)  # type: ignore[attr-defined]
        await until(lambda: budget(optimizer) >= 64, timeout=10)  # 4 files x 16, the ceiling
        host = next(iter(optimizer.probes))
        await until(lambda: optimizer.snapshot()["hosts"][host]["per_file"] >= 16, timeout=5)
        await until(lambda: optimizer.tracker.connections(host) >= 48, timeout=10)  # opened
    assert any("connections for each of" in d.reason for d in decisions)


@pytest.mark.slow
@pytest.mark.parametrize("answer", ["503", "429", "reset"])
async def test_a_connection_limit_is_learned_from_one_burst_and_never_crossed_again(
    sim: Simulator, tmp_path: Path, answer: str
) -> None:
    sim.faults.set(
        per_connection_rate=1 * MiB,
        max_active_requests=6,
        limit_answer=answer,
        limit_retry_after=1,
    )
    async with downloading(sim, tmp_path, files=2) as (optimizer, decisions):
        await until(lambda: bool(optimizer.probes), timeout=5)
        probe = next(iter(optimizer.probes.values()))
        await until(lambda: probe.conn_limit is not None and probe.phase is Phase.HOLD, 15)
        assert probe.conn_limit is not None and 4 <= probe.conn_limit <= 6
        assert probe.budget == probe.conn_limit  # sits at the limit, not half of it
        refused = sim.stats.refused
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        while loop.time() < deadline:  # a window with capped connections that would climb
            assert probe.budget == probe.conn_limit and probe.bursts == 1
            await asyncio.sleep(0.1)
        assert sim.stats.refused == refused  # no second burst
        snapshot = optimizer.snapshot()
    host = snapshot["hosts"][probe.host]
    assert host["limit"] == probe.conn_limit and "limit" in host["limit_why"]
    assert any(r["kind"] == "throttled" for r in snapshot["recommendations"])
    assert any("the server allows" in d.reason or "bisect" in d.reason for d in decisions)


#: A connection limit of every kind, on capped connections: two files of ``SIZE`` from a
#: cold start take at most ``LIMIT_FACTOR`` times the physical limit (both files' bytes at
#: ``LIMIT`` connections of ``CAP`` each: 4 s): the limit is found by one burst, not by
#: halving and waiting, and a hang is read as a refusal within seconds, not after a stall
#: timeout (its 2 s answer deadline is half the physical time: a factor of its own).
LIMIT, CAP, SIZE = 6, 2 * MiB, 24 * MiB
LIMIT_FACTOR = {"503": 1.5, "429": 1.5, "reset": 1.5, "hang": 2.0}


@pytest.mark.slow
@pytest.mark.parametrize("answer", ["503", "429", "reset", "hang"])
async def test_a_connection_limit_of_every_kind_is_found_and_the_files_finish_near_it(
    sim: Simulator, tmp_path: Path, answer: str
) -> None:
    file = big_file(sim)
    file.content = FileContent(ContentSpec(file.id, SIZE, ContentKind.SAFETENSORS))
    sim.faults.set(
        per_connection_rate=CAP,
        max_active_requests=LIMIT,
        limit_answer=answer,
        limit_retry_after=1,
        limit_hang_seconds=60,
    )
    loop = asyncio.get_running_loop()
    async with downloading(sim, tmp_path, files=2) as (optimizer, decisions):
        started = loop.time()
        results = await asyncio.gather(*optimizer.tasks)  # type: ignore[attr-defined]
        wall = loop.time() - started
        probe = next(iter(optimizer.probes.values()))
    assert all(r.status == "completed" and r.verified for r in results), results
    physical = 2 * SIZE / (LIMIT * CAP)
    assert wall <= LIMIT_FACTOR[answer] * physical, (
        wall,
        physical,
        [(d.old, d.new, d.reason) for d in decisions if d.setting == "connections"],
    )
    # the most connections seen served at once (a loaded machine may see one or two fewer)
    assert probe.conn_limit is not None and LIMIT - 2 <= probe.conn_limit <= LIMIT
    # at the limit (one under it if the busy machine shed one: the tables, not the probe)
    assert probe.conn_limit - 1 <= probe.budget <= probe.conn_limit
    assert probe.bursts == 1  # the first burst told the limit; none came after it


@pytest.mark.slow
async def test_a_known_host_starts_every_file_at_what_was_learned(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.faults.set(per_connection_rate=1 * MiB, max_active_requests=10)
    path = tmp_path / "perf_hosts.json"
    memory = HostMemory(path)
    memory.learn(urlsplit(sim.storage_url).hostname or "", 8, 8 * MiB, limit=9, per_file=4)
    memory.save()
    async with downloading(sim, tmp_path / "a", memory=HostMemory(path), files=2) as (
        optimizer,
        decisions,
    ):
        await until(lambda: len(optimizer.tracker.active()) == 2, timeout=5)
        probe = next(iter(optimizer.probes.values()))
        assert not probe.cold and probe.capped and probe.conn_limit == 9
        assert probe.budget == 8  # 4 per file for 2 files, under the learned limit
        await until(lambda: optimizer.tracker.connections() >= 7, timeout=5)
        optimizer.start_more(1)  # type: ignore[attr-defined]
        await until(lambda: probe.files == 3, timeout=5)
        assert probe.budget == 9  # 3 files x 4 would cross the learned limit
    assert "learned on an earlier run" in decisions[0].reason
    assert sim.stats.refused == 0


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
        # saved while it runs (a busy machine slows the first probes: a generous deadline)
        await until(lambda: learned_budget() >= 16, timeout=40)
    (learned,) = HostMemory(path).hosts.values()
    assert learned.budget >= 16 and learned.rate > 0
    async with downloading(sim, tmp_path / "b", memory=HostMemory(path)) as (optimizer, decisions):
        await until(lambda: bool(optimizer.probes), timeout=5)
        probe = next(iter(optimizer.probes.values()))
        assert probe.budget == learned.budget and not probe.cold
    assert "learned on an earlier run" in decisions[0].reason


@pytest.mark.slow
async def test_minimal_holds_a_host_to_two_connections_whatever_the_files(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.faults.set(per_connection_rate=2 * MiB)
    minimal = replace(FAST, mode=OptimizationMode.MINIMAL)
    async with downloading(sim, tmp_path, config=minimal, files=4) as (optimizer, decisions):
        await until(lambda: optimizer.tracker.connections() >= 2, timeout=10)
        loop = asyncio.get_running_loop()
        deadline, most = loop.time() + 3.0, 0
        while loop.time() < deadline:
            most = max(most, sim.stats.open_connections, optimizer.tracker.connections())
            await asyncio.sleep(0.05)
    assert most <= 2 and sim.stats.max_open_connections <= 3  # (+1: a closing first answer)
    assert not any("probing" in d.reason for d in decisions)


@pytest.fixture
async def optimizer() -> AsyncIterator[PerformanceOptimizer]:
    opt = PerformanceOptimizer(EventBus(), DownloaderControls(lambda: None))
    await opt.stop()  # before start: nothing to undo
    await opt.start()
    try:
        yield opt
    finally:
        await opt.stop()


def start_file(opt: PerformanceOptimizer, key: str = "j:f", host: str = "cdn.test") -> None:
    opt.bus.publish(FileStarted(file=FileInfo(key=key, name="m.safetensors", host=host)))


def reasons(opt: PerformanceOptimizer) -> list[str]:
    return [d.reason for d in opt.decisions]


async def test_a_burst_of_resets_and_stalls_cuts_the_hosts_connections(
    optimizer: PerformanceOptimizer,
) -> None:
    start_file(optimizer)
    optimizer.set_mode("speed")  # starts at 8 connections: room for a cut
    budget = optimizer.probes["cdn.test"].budget
    assert budget >= 2
    for i in range(budget):
        reason = "no data for 30 s" if i % 2 else "connection reset by peer"
        optimizer.bus.publish(RetryScheduled(key="j:f", attempt=i + 1, delay=1.0, reason=reason))
    optimizer.bus.publish(RetryScheduled(key="other:f", attempt=1, delay=1.0, reason="reset"))
    health = optimizer.health.host("cdn.test")
    assert (health.reset, health.stalled) == ((budget + 1) // 2, budget // 2)
    cut = f"{budget} connections reset or stalled at once: fewer connections"
    await until(lambda: cut in reasons(optimizer))
    assert optimizer.probes["cdn.test"].budget == budget * 3 // 4
    decision = next(d for d in optimizer.decisions if d.reason == cut)
    assert isinstance(decision, OptimizerDecision) and decision.host == "cdn.test"


async def test_without_probing_throttling_is_only_counted(optimizer: PerformanceOptimizer) -> None:
    optimizer.set_mode("minimal")
    optimizer.set_mode(OptimizationMode.MINIMAL)  # the same mode again: no new decision
    assert reasons(optimizer).count("mode changed") == 1
    start_file(optimizer)
    before = optimizer.probes["cdn.test"].budget
    optimizer.bus.publish(
        RetryScheduled(key="j:f", attempt=1, delay=2.0, reason="HTTP 429", status=429)
    )
    assert optimizer.health.host("cdn.test").throttled == 1
    assert optimizer.probes["cdn.test"].budget == before
    assert not any("429" in r for r in reasons(optimizer))


async def test_idle_it_ticks_once_a_second_and_a_starting_file_wakes_it() -> None:
    opt = PerformanceOptimizer(EventBus(), DownloaderControls(lambda: None))
    ticks: list[float] = []
    probe_tick = opt._probe_tick
    opt._probe_tick = lambda now: (ticks.append(now), probe_tick(now))[1]  # type: ignore[method-assign]
    await opt.start()
    try:
        await until(lambda: len(ticks) >= 2)  # the first tick at once, then a second later
        assert ticks[1] - ticks[0] >= 0.9 * opt.config.sample_interval  # not 10 a second
        idle_since = len(ticks)
        started = asyncio.get_running_loop().time()
        start_file(opt)
        await until(lambda: len(ticks) >= idle_since + 3, timeout=0.9)  # woken: 0.1 s ticks
        assert ticks[idle_since] - started < 0.5
    finally:
        await opt.stop()
