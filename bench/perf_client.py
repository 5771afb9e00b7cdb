"""One benchmark client run: our downloader under an optimizer mode, or with fixed connections.

Prints one JSON object: ``ok``, ``bytes``, ``seconds``, ``download_cpu_s`` (CPU of
the download alone, without interpreter start-up), ``connections`` (peak per
file), ``host_connections`` (peak of all files together), ``retries``,
``throttled`` (429/503 answers), ``bursts`` (refusal bursts the optimizer saw),
``limits`` (connection limits it learned), ``probes`` (probing decisions),
``decisions``, ``rss_mib`` (peak) and ``optimizer_cpu_s`` (CPU spent in the
optimizer's own code). Several ``--url`` download at once, ``--max-files`` at a
time (the default of ``bulk.max_files``); ``--memory`` is the optimizer's
``perf_hosts.json`` (a warm start reuses the cold one's). A run that reaches
``--timeout`` stops and reports the bytes it had (``ok`` false). ``--idle S``
instead runs the optimizer with nothing to download for S seconds and reports
its CPU (the idle overhead).

Usage: ``python -m bench.perf_client --url URL [--url URL ...] --dest DIR (--mode M | --fixed N)
[--memory FILE] [--max-files N]``
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from civitai_tui.download.disk import FreeSpaceRule
from civitai_tui.download.downloader import FileDownloader
from civitai_tui.download.request import DirectSource, DownloadRequest
from civitai_tui.download.session import create_download_session
from civitai_tui.download.settings import DownloadResult, DownloadSettings
from civitai_tui.events import (
    Event,
    EventBus,
    FileCompleted,
    FileFailed,
    FileInfo,
    FileProgress,
    OptimizerDecision,
    RetryScheduled,
)
from civitai_tui.perf import OptimizationConfig, OptimizationMode, PerformanceOptimizer
from civitai_tui.perf.controls import DownloaderControls
from civitai_tui.perf.memory import HostMemory
from civitai_tui.perf.session import create_optimized_session

MiB = 1 << 20


class Stats:
    """What the bus told us about the run."""

    def __init__(self) -> None:
        self.peak = self.host_peak = self.retries = self.throttled = self.decisions = 0
        self.probes = 0
        self.optimizer_cpu = 0.0
        self.files: dict[str, tuple[int, int]] = {}  # key -> (done, connections)

    @property
    def done(self) -> int:
        return sum(done for done, _ in self.files.values())

    def __call__(self, event: Event) -> None:
        if isinstance(event, FileProgress):
            self.files[event.key] = (event.done, event.connections)
            self.peak = max(self.peak, event.connections)
            self.host_peak = max(self.host_peak, sum(c for _, c in self.files.values()))
        elif isinstance(event, FileCompleted | FileFailed):
            done, _ = self.files.get(event.file.key, (0, 0))
            self.files[event.file.key] = (done, 0)
        elif isinstance(event, RetryScheduled):
            self.retries += 1
            self.throttled += event.status in (429, 503)
        elif isinstance(event, OptimizerDecision):
            self.decisions += 1
            self.probes += "probing" in event.reason

    def timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        """``method`` with its thread CPU time added to ``optimizer_cpu``."""

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.optimizer_cpu += time.thread_time() - started

        return wrapper


def instrument(optimizer: PerformanceOptimizer, stats: Stats) -> None:
    for name in ("_probe_tick", "_sample", "_tables", "_on_event"):
        setattr(optimizer, name, stats.timed(getattr(optimizer, name)))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bus, stats = EventBus(), Stats()
    settings = DownloadSettings(
        connections=args.fixed or 16, min_split=1 * MiB, min_free_space=FreeSpaceRule(size=0)
    )
    holder: list[FileDownloader] = []
    optimizer = None
    if args.mode:
        config = OptimizationConfig(mode=OptimizationMode(args.mode))
        memory = HostMemory(args.memory) if args.memory else None
        optimizer = PerformanceOptimizer(bus, DownloaderControls(lambda: holder[0]), config, memory)
        settings.stream_observer = optimizer.health.record_stream
        instrument(optimizer, stats)
        session = create_optimized_session(optimizer)
    else:
        session = create_download_session(limit=0, limit_per_host=max(64, args.fixed or 0))
    bus.add_callback(stats)
    async with session:
        holder.append(FileDownloader(session, bus, settings))
        if optimizer is not None:
            await optimizer.start()
        gate = asyncio.Semaphore(args.max_files)

        async def one(index: int, url: str) -> DownloadResult:
            request = DownloadRequest(
                info=FileInfo(key=f"bench{index}", name="bench"),
                source=DirectSource(url),
                dest_dir=args.dest,
            )
            async with gate:
                return await holder[0].download(request)

        started = time.perf_counter()
        cpu_before = _cpu()
        error = None
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(one(i, u) for i, u in enumerate(args.url))), args.timeout
            )
            ok = all(r.status == "completed" for r in results)
            error = next((r.error.message for r in results if r.error), None)
        except TimeoutError:
            ok, error = False, f"timeout after {args.timeout:g} s"
        seconds = time.perf_counter() - started
        download_cpu = _cpu() - cpu_before
        if optimizer is not None:
            await optimizer.stop()
    return {
        "ok": ok,
        "error": error,
        "bytes": stats.done,
        "seconds": seconds,
        "download_cpu_s": download_cpu,
        "connections": stats.peak,
        "host_connections": stats.host_peak,
        "bursts": sum(p.bursts for p in optimizer.probes.values()) if optimizer else None,
        "limits": [p.conn_limit for p in optimizer.probes.values()] if optimizer else None,
        "probes": stats.probes,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "retries": stats.retries,
        "throttled": stats.throttled,
        "decisions": stats.decisions,
        "optimizer_cpu_s": stats.optimizer_cpu,
    }


def _cpu() -> float:
    """CPU seconds (user + system) of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def idle(seconds: float) -> dict[str, Any]:
    optimizer = PerformanceOptimizer(EventBus(), DownloaderControls(lambda: None))
    before = _cpu()
    await optimizer.start()
    await asyncio.sleep(seconds)
    await optimizer.stop()
    cpu = _cpu() - before
    return {"ok": True, "seconds": seconds, "cpu_s": cpu, "cpu_s_per_hour": cpu * 3600 / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf_client", description=__doc__)
    parser.add_argument("--url", action="append", default=[], help="repeat for several files")
    parser.add_argument("--memory", type=Path, help="the optimizer's perf_hosts.json")
    parser.add_argument("--max-files", type=int, default=10, help="files at once")
    parser.add_argument("--dest", type=Path)
    parser.add_argument("--mode", choices=[m.value for m in OptimizationMode])
    parser.add_argument("--fixed", type=int)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--idle", type=float)
    args = parser.parse_args(argv)
    if args.idle:
        print(json.dumps(asyncio.run(idle(args.idle))))
        return 0
    if not args.url or not args.dest or bool(args.mode) == bool(args.fixed):
        parser.error("--url, --dest and exactly one of --mode / --fixed are required")
    args.dest.mkdir(parents=True, exist_ok=True)
    outcome = asyncio.run(run(args))
    print(json.dumps(outcome))
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
