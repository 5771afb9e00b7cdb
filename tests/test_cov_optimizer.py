"""The optimizer fed real bus events: bursts of resets cut connections; modes without
probing only count throttling; it is safe to stop before it starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from civitai_tui.events import EventBus, FileInfo, FileStarted, OptimizerDecision, RetryScheduled
from civitai_tui.perf.controls import DownloaderControls
from civitai_tui.perf.modes import OptimizationMode
from civitai_tui.perf.optimizer import PerformanceOptimizer


@pytest.fixture
async def optimizer() -> AsyncIterator[PerformanceOptimizer]:
    opt = PerformanceOptimizer(EventBus(), DownloaderControls(lambda: None))
    await opt.stop()  # before start: nothing to undo
    await opt.start()
    try:
        yield opt
    finally:
        await opt.stop()


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


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
