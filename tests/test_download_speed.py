"""Speed limits: parsed like aria2's, held within 5 % over seconds, changeable live, fair."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_download_support import downloader, fast_settings, request_for

from civitai_tui.download.speed import RateLimiter, SpeedLimits, parse_speed
from civitai_tui.events import EventBus, FileInfo, FileProgress
from civitai_tui.simulator.server import Simulator
from civitai_tui.units import format_speed, human_bytes, human_speed

MB = 1_000_000
MiB = 1 << 20


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("20MB", 20 * MB),
        ("20MB/s", 20 * MB),
        ("5M", 5 * MB),
        ("512KiB", 512 * 1024),
        ("1.5 GB/s", 1_500_000_000),
        ("1000000", 1_000_000),
        ("0", 0),
        ("unlimited", 0),
        ("off", 0),
        (3 * MB, 3 * MB),
    ],
)
def test_speeds_parse_like_a_user_writes_them(text: str | int, rate: int) -> None:
    assert parse_speed(text) == rate


@given(st.text(max_size=20))
def test_any_text_is_a_speed_or_a_clear_error(text: str) -> None:
    try:
        assert parse_speed(text) >= 0
    except ValueError as err:
        assert "not a speed" in str(err)


def test_formatting() -> None:
    assert format_speed(0) == "unlimited"
    assert format_speed(20 * MiB) == "20 MiB/s" and format_speed(512) == "512 B/s"
    assert format_speed(20 * MB) == "19.1 MiB/s"  # typed in decimal, shown in binary
    assert format_speed(1000 * 1024) == "1000 KiB/s"  # never 1e+03


def test_sizes_speeds_and_limits_read_in_one_unit() -> None:
    """A limit and a download running at it show the same number (binary everywhere)."""
    limit = parse_speed("20MiB")
    assert format_speed(limit) == "20 MiB/s" and human_speed(limit) == "20.0 MiB/s"
    assert human_bytes(limit) == "20.0 MiB"
    assert human_speed(1536) == "1.5 KiB/s" and human_speed(0) == ""
    assert human_bytes(None) == "?" and human_bytes(1023) == "1023 B"


def test_a_limiter_holds_its_rate_and_starts_fresh_on_a_new_one() -> None:
    now = [100.0]
    limiter = RateLimiter(1 * MB, clock=lambda: now[0])
    waits = [limiter.reserve(250_000) for _ in range(4)]  # 1 MB at once: 1 s of rate
    assert waits[-1] == pytest.approx(1.0 - 0.05)  # minus the small burst allowance
    limiter.set_rate(2 * MB)
    assert limiter.reserve(200_000) == pytest.approx(0.1)  # the new rate, from now
    limiter.set_rate(0)
    assert limiter.reserve(10**9) == 0.0


class Meter:
    """Bytes per file from progress events, rated between the events' own timestamps:
    a window's edges then fall on real readings, so a progress event that arrives late on
    a busy machine cannot stretch or shrink the bytes counted (no sleep races)."""

    def __init__(self, bus: EventBus) -> None:
        self.done: dict[str, int] = {}
        self.samples: dict[str, list[tuple[float, int]]] = {}
        bus.add_callback(self._on)

    def _on(self, event: object) -> None:
        if isinstance(event, FileProgress):
            self.done[event.key] = event.done
            self.samples.setdefault(event.key, []).append((event.ts, event.done))

    async def rates(self, seconds: float) -> dict[str, float]:
        """Bytes/s of each file over the next ``seconds`` (polled until the deadline)."""
        loop = asyncio.get_running_loop()
        started, since = loop.time(), time.time()
        while loop.time() - started < seconds:
            await asyncio.sleep(0.05)
        rates: dict[str, float] = {}
        for key, samples in self.samples.items():
            window = [sample for sample in samples if sample[0] >= since]
            (first_ts, first), (last_ts, last) = window[0], window[-1]
            rates[key] = (last - first) / (last_ts - first_ts)
        return rates


async def until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached before the deadline"
        await asyncio.sleep(0.05)


def big(sim: Simulator):
    return next(f for f in sim.catalogue.files() if f.name == "largeRealism_v10.safetensors")


@pytest.mark.slow
async def test_the_overall_limit_holds_is_shared_fairly_and_changes_live(
    sim: Simulator, tmp_path: Path
) -> None:
    bus, limits = EventBus(), SpeedLimits()
    limits.set_overall(8 * MB)
    settings = fast_settings(connections=4, stall_timeout=10.0, speed=limits)
    meter = Meter(bus)
    async with downloader(settings, bus) as dl:
        tasks = [
            asyncio.create_task(dl.download(_copy(sim, tmp_path, name))) for name in ("a", "b")
        ]
        try:
            await until(lambda: len(meter.done) == 2, timeout=10)
            await meter.rates(1.0)  # warm-up
            rates = await meter.rates(5.0)
            total = sum(rates.values())
            assert total == pytest.approx(8 * MB, rel=0.05)
            assert min(rates.values()) >= 0.35 * total  # equal connections: equal shares
            limits.set_overall(4 * MB)  # live: `config set download.max_speed 4MB`
            await meter.rates(0.5)
            assert sum((await meter.rates(5.0)).values()) == pytest.approx(4 * MB, rel=0.05)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.slow
async def test_a_job_limit_holds_beside_an_unlimited_job(sim: Simulator, tmp_path: Path) -> None:
    bus = EventBus()
    limits = SpeedLimits(job_rate=lambda job_id: 3 * MB if job_id == "slow" else None)
    settings = fast_settings(connections=4, stall_timeout=10.0, speed=limits)
    meter = Meter(bus)
    async with downloader(settings, bus) as dl:
        task = asyncio.create_task(dl.download(_copy(sim, tmp_path, "a", job_id="slow")))
        try:
            await until(lambda: bool(meter.done), timeout=10)
            await meter.rates(1.0)
            assert (await meter.rates(5.0))["a"] == pytest.approx(3 * MB, rel=0.05)
            limits.set_job("slow", 6 * MB)  # live: `civitai-tui max-speed JOB 6MB`
            await meter.rates(0.5)
            assert (await meter.rates(4.0))["a"] == pytest.approx(6 * MB, rel=0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _copy(sim: Simulator, dest: Path, key: str, job_id: str | None = None):
    request = request_for(sim, big(sim), dest / key)
    request.info = FileInfo(key=key, name=request.info.name, job_id=job_id)
    return request
