"""Benchmark of the analytics pillar (run on demand; prints a table).

    .venv/bin/python bench/bench_analytics.py [--events 1000000] [--keep DIR]

Measures, on a synthetic but realistic event mix (progress ticks, starts,
completions, failures, retries, scans, optimizer decisions, metric samples over
10 days at 100,000 events a day): recording through AnalyticsCollector,
analysing the whole period, and writing the HTML (with charts), JSON and PDF
reports. Reports time, peak RSS growth and database size per step.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from civitai_tui.analytics.analyzer import AnalyticsAnalyzer
from civitai_tui.analytics.collector import AnalyticsCollector
from civitai_tui.analytics.settings import AnalyticsSettings
from civitai_tui.events import (
    Event,
    FileCompleted,
    FileFailed,
    FileInfo,
    FileProgress,
    FileStarted,
    MetricsSample,
    OptimizerDecision,
    RetryScheduled,
    SecurityScanFinished,
)

EVENTS_PER_DAY = 100_000
HOSTS = ("b2.civitai.com", "cdn-a.example", "cdn-b.example", "r2.example")
TYPES = ("LORA", "Checkpoint", "TextualInversion", "VAE")
BASES = ("SDXL 1.0", "SD 1.5", "Pony", "Flux.1 D")
KINDS = ("network", "hash_mismatch", "rate_limited", "not_found", "stalled")


def synthetic_events(count: int, start: float, seed: int = 7) -> Iterator[Event]:
    """About ``count`` events: downloads with progress ticks, plus system samples."""
    rnd = random.Random(seed)
    step = 86400.0 / EVENTS_PER_DAY
    ts, n, file_no = start, 0, 0
    while n < count:
        file_no += 1
        info = FileInfo(
            key=f"v{file_no}/f{file_no}",
            name=f"model_{file_no}.safetensors",
            size=rnd.randint(10, 7000) * 1_000_000,
            host=rnd.choice(HOSTS),
            job_id=f"job-{file_no // 50}",
            model_id=file_no,
            version_id=file_no,
            file_id=file_no,
            model_type=rnd.choice(TYPES),
            base_model=rnd.choice(BASES),
            creator=f"creator{file_no % 300}",
        )
        batch: list[Event] = [FileStarted(file=info, ts=ts)]
        ticks = rnd.randint(6, 12)
        for i in range(ticks):
            batch.append(
                FileProgress(
                    key=info.key, done=i * 1000, total=info.size, speed=2e7, ts=ts + (i + 1) * step
                )
            )
            if i % 4 == 3:
                batch.append(
                    MetricsSample(
                        cpu_percent=12.0,
                        memory_percent=40.0,
                        throughput=3e7,
                        connections=8,
                        ts=ts + i * step,
                    )
                )
        end = ts + (ticks + 1) * step
        if rnd.random() < 0.2:
            batch.append(
                RetryScheduled(
                    key=info.key,
                    attempt=1,
                    delay=2.0,
                    reason="HTTP 503",
                    status=503,
                    ts=end - step / 2,
                )
            )
        if rnd.random() < 0.9:
            batch.append(SecurityScanFinished(key=info.key, verdict="clean", ts=end))
            batch.append(
                FileCompleted(
                    file=info,
                    path="/m/x",
                    bytes=info.size or 0,
                    fetched_bytes=info.size or 0,
                    sha256="0" * 64,
                    duration=rnd.uniform(5, 300),
                    ts=end,
                )
            )
        else:
            batch.append(FileFailed(file=info, kind=rnd.choice(KINDS), message="failed", ts=end))
        if file_no % 200 == 0:
            batch.append(
                OptimizerDecision(setting="concurrency", old=4, new=5, reason="fast", ts=end)
            )
        yield from batch[: count - n]
        n += len(batch)
        ts += len(batch) * step  # 100,000 events a day on average


def _import_reports() -> Any:
    import civitai_tui.analytics.reports as reports  # fpdf2, jinja2, plotly.js loader

    return reports


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, fn: Callable[[], Any], rows: list[list[str]]) -> Any:
    before = rss_mb()
    t0 = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - t0
    rows.append([name, f"{elapsed:.3f} s", f"+{rss_mb() - before:.0f} MB"])
    return result, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="write the database and reports here")
    args = parser.parse_args()
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    out.mkdir(parents=True, exist_ok=True)
    db = out / "analytics.db"
    db.unlink(missing_ok=True)
    start = time.time() - args.events / EVENTS_PER_DAY * 86400
    events = list(synthetic_events(args.events, start))
    rows: list[list[str]] = []

    def record() -> AnalyticsCollector:
        settings = AnalyticsSettings(progress_interval=0.0)  # the generator already samples
        with AnalyticsCollector(db, settings) as collector:
            for i, event in enumerate(events, 1):
                collector.record(event)
                if i % 100_000 == 0:
                    collector.flush()  # backpressure: keep the buffer bounded like a real producer
        return collector

    collector, elapsed = measure(f"record {len(events):,} events", record, rows)
    stored = collector.stats.written
    rate = len(events) / elapsed
    rows[-1].append(f"{rate:,.0f} events/s, {stored:,} stored, {collector.stats.dropped} dropped")
    size = db.stat().st_size
    rows[-1].append(f"db {size / 1e6:.1f} MB = {size / len(events):.0f} B/event")
    analyzer = AnalyticsAnalyzer(db)
    report, _ = measure("analyse the whole period", lambda: analyzer.analyze(utc_offset=0), rows)
    reports, _ = measure("import the report modules", _import_reports, rows)
    gen = reports.ReportGenerator(report, reports.ReportConfig())
    for fmt in ("html", "json", "pdf"):
        path = out / f"report.{fmt}"
        measure(f"write {fmt.upper()} report", lambda p=path, f=fmt: gen.write(p, f), rows)
        rows[-1].append(f"{path.stat().st_size / 1e6:.2f} MB")
    small = reports.ReportGenerator(report, reports.ReportConfig(include_charts=False))
    path = out / "report-nocharts.html"
    measure("write HTML report, no charts", lambda: small.write(path, "html"), rows)
    rows[-1].append(f"{path.stat().st_size / 1e3:.0f} kB")
    print(f"{'operation':<34} {'time':>9} {'memory':>9}  notes")
    for row in rows:
        print(f"{row[0]:<34} {row[1]:>9} {row[2]:>9}  {'; '.join(row[3:])}")
    print(f"(files in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
