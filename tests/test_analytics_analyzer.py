"""Analyzer numbers against hand-computed expectations on small generated event sets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import pytest

from civitai_tui.analytics.analyzer import AnalyticsAnalyzer
from civitai_tui.analytics.collector import AnalyticsCollector
from civitai_tui.analytics.patterns import FAILURE_ADVICE
from civitai_tui.analytics.stats import percentile, trend
from civitai_tui.events import (
    Event,
    FileCompleted,
    FileFailed,
    FileInfo,
    OptimizerDecision,
    RetryScheduled,
    SecurityScanFinished,
)

MB = 1_000_000
T0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp()  # a Monday, 00:00 UTC
H, D = 3600.0, 86400.0


def info(n: int, host: str, model_type: str, base: str) -> FileInfo:
    return FileInfo(
        key=f"v{n}/f{n}",
        name=f"f{n}.safetensors",
        host=host,
        model_type=model_type,
        base_model=base,
        size=n * MB,
    )


def completed(f: FileInfo, ts: float, size: int, duration: float = 100.0) -> FileCompleted:
    return FileCompleted(
        file=f,
        path="/m/x",
        bytes=size,
        fetched_bytes=size,
        sha256="0" * 64,
        duration=duration,
        ts=ts,
    )


def record(db: Path, events: Iterable[Event]) -> None:
    with AnalyticsCollector(db) as collector:
        for event in events:
            collector.record(event)


@pytest.fixture
def sample_db(tmp_path: Path) -> Path:
    """Four completed downloads (1, 2, 4, 8 MB/s) and one failed, over two days."""
    f1, f2 = info(1, "a", "LORA", "SDXL 1.0"), info(2, "a", "LORA", "SD 1.5")
    f3, f4 = info(3, "b", "Checkpoint", "SDXL 1.0"), info(4, "b", "Checkpoint", "SDXL 1.0")
    f5 = info(5, "b", "LORA", "SDXL 1.0")
    storm = T0 + D + 5 * H
    events: list[Event] = [
        completed(f1, T0 - H, 999 * MB),  # before the period: ignored
        completed(f1, T0 + H, 100 * MB),
        SecurityScanFinished(key=f1.key, verdict="clean", ts=T0 + H),
        OptimizerDecision(setting="concurrency", old=4, new=6, reason="fast", ts=T0 + 2 * H),
        completed(f2, T0 + 3 * H, 200 * MB),
        completed(f3, T0 + D + 3 * H, 400 * MB),
        completed(f4, T0 + D + 5 * H, 800 * MB),
        *(
            RetryScheduled(key=f5.key, attempt=i, delay=1.0, reason="HTTP 503", ts=storm + i)
            for i in range(10)
        ),
        SecurityScanFinished(key=f5.key, verdict="dangerous", ts=storm + 30),
        FileFailed(file=f5, kind="hash_mismatch", message="sha256 differs", ts=storm + 60),
        OptimizerDecision(
            setting="concurrency", old=6, new=3, reason="rate limited", ts=storm + 61
        ),
    ]
    db = tmp_path / "analytics.db"
    record(db, events)
    return db


def analyze(db: Path, offset: int = 0):  # type: ignore[no-untyped-def]
    return AnalyticsAnalyzer(db).analyze(T0, T0 + 2 * D, utc_offset=offset)


def test_totals_and_speed_statistics(sample_db: Path) -> None:
    r = analyze(sample_db)
    t = r.totals
    assert (t.completed, t.failed, t.retries, t.scans, t.unsafe_scans) == (4, 1, 10, 2, 1)
    assert t.success_rate == pytest.approx(0.8)
    assert t.bytes == t.fetched_bytes == 1500 * MB
    assert t.mean_duration == pytest.approx(100.0)
    s = r.speed
    assert s.count == 4
    assert s.mean == pytest.approx(3.75 * MB)
    assert s.median == pytest.approx(3 * MB)
    assert s.p95 == pytest.approx(7.4 * MB)  # inclusive: 4 + 0.85 * (8 - 4)
    assert (s.min, s.max) == (pytest.approx(1 * MB), pytest.approx(8 * MB))


def test_breakdowns_by_host_cause_and_model(sample_db: Path) -> None:
    r = analyze(sample_db)
    assert [(c.name, c.count) for c in r.failures_by_cause] == [("hash_mismatch", 1)]
    b, a = r.hosts
    assert (b.name, b.completed, b.failed, b.bytes) == ("b", 2, 1, 1200 * MB)
    assert b.success_rate == pytest.approx(2 / 3)
    assert b.median_speed == pytest.approx(6 * MB)
    assert (a.name, a.completed, a.failed, a.median_speed) == ("a", 2, 0, pytest.approx(1.5 * MB))
    assert {m.name: (m.completed, m.failed) for m in r.model_types} == {
        "LORA": (2, 1),
        "Checkpoint": (2, 0),
    }
    assert {m.name: (m.completed, m.failed) for m in r.base_models} == {
        "SDXL 1.0": (3, 1),
        "SD 1.5": (1, 0),
    }


def test_time_buckets_follow_the_utc_offset(sample_db: Path) -> None:
    r = analyze(sample_db)
    assert {h: n for h, n in enumerate(r.hourly) if n} == {1: 1, 3: 2, 5: 2}
    assert r.weekdays == [2, 3, 0, 0, 0, 0, 0]  # Monday, Tuesday
    assert [(d.date, d.completed, d.failed) for d in r.daily] == [
        ("2026-11-02", 2, 0),
        ("2026-11-03", 2, 1),
    ]
    shifted = analyze(sample_db, offset=3600)
    assert {h: n for h, n in enumerate(shifted.hourly) if n} == {2: 1, 4: 2, 6: 2}
    assert sum(p.bytes_per_s for p in r.throughput) * 3600 == pytest.approx(1500 * MB)


def test_split_half_trends(sample_db: Path) -> None:
    trends = {t.metric: t for t in analyze(sample_db).trends}
    downloads = trends["downloads"]
    assert (downloads.first_half, downloads.second_half) == (2, 3)
    assert downloads.change_pct == pytest.approx(50.0)
    assert (downloads.direction, downloads.significance) == ("up", "high")
    rate = trends["success_rate"]
    assert rate.change_pct == pytest.approx(-100 / 3)
    assert (rate.direction, rate.significance) == ("down", "high")
    assert trends["mean_speed"].change_pct == pytest.approx(300.0)


def test_patterns_optimizer_and_recommendations(sample_db: Path) -> None:
    r = analyze(sample_db)
    kinds = {p.kind: p for p in r.patterns}
    assert set(kinds) == {
        "failing_host",
        "retry_storm",
        "verification_failures",
        "unsafe_files",
        "low_success_rate",
    }  # host "a" runs at exactly half the median speed: not yet "slow"
    failing = kinds["failing_host"]
    assert failing.title == "Failing host: b"
    assert failing.confidence == pytest.approx(3 / 50)
    # The advice is that of the host's own failures (a bad hash), not "lower concurrency".
    assert "mostly hash_mismatch (1 of 1)" in failing.detail
    assert failing.recommendations == [FAILURE_ADVICE["hash_mismatch"]]
    assert "f5.safetensors" in kinds["verification_failures"].detail
    assert "hash_mismatch" in kinds["low_success_rate"].detail
    # A file refused as unsafe is never "retried": the advice fits the cause.
    assert "f5.safetensors" in kinds["unsafe_files"].detail
    [unsafe_advice] = kinds["unsafe_files"].recommendations
    assert unsafe_advice.startswith("Do not retry")
    [opt] = r.optimizer
    assert (opt.setting, opt.decisions, opt.last_value, opt.last_reason) == (
        "concurrency",
        2,
        "3",
        "rate limited",
    )
    # The optimizer's decisions are its own section, never a recommendation.
    assert not any("Optimizer" in rec or "is now" in rec for rec in r.recommendations)
    assert any("SHA256" in rec for rec in r.recommendations)
    # 5 downloads over 2 days: no time patterns, and the report says what they need.
    assert r.notes == [
        "Time-of-day and weekday patterns need at least 20 downloads over at least 3 days; "
        "this period has 5 over 2 day(s)."
    ]


def test_time_patterns_need_twenty_downloads_over_three_days(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    evening = [T0 + day * D + 21 * H + n * 60 for day in range(3) for n in range(7)]
    record(
        db, [completed(info(n, "a", "LORA", "SDXL 1.0"), ts, MB) for n, ts in enumerate(evening)]
    )
    r = AnalyticsAnalyzer(db).analyze(T0, T0 + 3 * D, utc_offset=0)
    assert [p.kind for p in r.patterns if p.kind == "peak_hours"] == ["peak_hours"]
    assert "21:00" in next(p.detail for p in r.patterns if p.kind == "peak_hours")
    assert r.notes == []
    fewer = AnalyticsAnalyzer(db).analyze(T0, T0 + 2 * D, utc_offset=0)  # 14 over 2 days
    assert not [p for p in fewer.patterns if p.kind in ("peak_hours", "busy_weekdays")]
    assert "this period has 14 over 2 day(s)" in fewer.notes[0]


def test_medians_for_every_breakdown_and_the_stored_names(sample_db: Path) -> None:
    r = analyze(sample_db)
    types = {b.name: b.median_speed for b in r.model_types}
    assert types == {"LORA": pytest.approx(1.5 * MB), "Checkpoint": pytest.approx(6 * MB)}
    bases = {b.name: b.median_speed for b in r.base_models}
    assert bases == {"SDXL 1.0": pytest.approx(4 * MB), "SD 1.5": pytest.approx(2 * MB)}
    assert r.creator_names == "none"  # no creators recorded: no claim either way


def test_throughput_covers_the_whole_period_in_buckets(sample_db: Path) -> None:
    r = analyze(sample_db)
    assert r.throughput_bucket_s == 3600
    assert len(r.throughput) == 48  # two days, hourly, the empty hours too
    assert r.throughput[0].ts == T0 and r.throughput[-1].ts == T0 + 47 * H
    by_ts = {p.ts: p.bytes_per_s for p in r.throughput}
    assert by_ts[T0 + H] == pytest.approx(100 * MB / 3600) and by_ts[T0 + 2 * H] == 0


def test_empty_period(tmp_path: Path) -> None:
    r = AnalyticsAnalyzer(tmp_path / "analytics.db").analyze(T0, T0 + 2 * D, utc_offset=0)
    assert (r.totals.completed, r.totals.failed, r.totals.success_rate) == (0, 0, None)
    assert r.speed.count == 0 and r.speed.median is None and r.speed.p95 is None
    assert r.hourly == [0] * 24 and r.weekdays == [0] * 7
    assert [(d.date, d.completed, d.success_rate) for d in r.daily] == [
        ("2026-11-02", 0, None),
        ("2026-11-03", 0, None),
    ]
    assert r.patterns == [] and r.recommendations == [] and r.speed_histogram == []
    assert all(t.change_pct is None and t.significance == "low" for t in r.trends)


def test_single_event(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    record(db, [completed(info(1, "a", "LORA", "SDXL 1.0"), T0 + H, 50 * MB, duration=10.0)])
    r = AnalyticsAnalyzer(db).analyze(utc_offset=0)  # default period: first event to now
    assert r.period.since == pytest.approx(T0 + H)
    assert (r.totals.completed, r.totals.success_rate) == (1, 1.0)
    s = r.speed
    assert s.mean == s.median == s.p95 == s.min == s.max == pytest.approx(5 * MB)
    assert [(b.count, b.low) for b in r.speed_histogram] == [(1, pytest.approx(5 * MB))]


@pytest.mark.parametrize(
    ("second", "significance", "direction"),
    [
        (105.1, "high", "up"),
        (105.0, "medium", "up"),
        (97.5, "medium", "down"),
        (102.0, "low", "up"),
        (100.0, "low", "flat"),
    ],
)
def test_trend_significance_thresholds(second: float, significance: str, direction: str) -> None:
    t = trend("x", 100.0, second)
    assert (t.significance, t.direction) == (significance, direction)


def test_percentile_is_inclusive() -> None:
    assert percentile([10, 20, 30, 40, 50], 95) == pytest.approx(48.0)
    assert percentile([7], 95) == 7.0
