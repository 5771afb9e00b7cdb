"""The collector against a real SQLite file: batching, flush triggers, schema, retention."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from civitai_tui.analytics.collector import AnalyticsCollector
from civitai_tui.analytics.event_types import EventType
from civitai_tui.analytics.retention import cleanup
from civitai_tui.analytics.schema import SCHEMA_VERSION, connect
from civitai_tui.analytics.settings import AnalyticsSettings
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import (
    EventBus,
    FileInfo,
    FileProgress,
    FileStarted,
    JobStateChanged,
    MetricsSample,
    NetworkConditionChanged,
)


def rows(db: Path, sql: str = "SELECT count(*) FROM events") -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchone()[0]


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def state(n: int, ts: float | None = None) -> JobStateChanged:
    return JobStateChanged(
        job_id=f"job{n}", old="pending", new="processing", ts=time.time() if ts is None else ts
    )


def test_bus_events_are_written_by_count(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    bus = EventBus()
    settings = AnalyticsSettings(flush_events=50, flush_interval=3600)
    collector = AnalyticsCollector(db, settings)
    collector.attach(bus)
    try:
        for i in range(49):
            bus.publish(state(i))
        assert rows(db) == 0  # below the batch size and long before the interval
        bus.publish(state(49))
        wait_until(lambda: rows(db) == 50)
    finally:
        collector.close()
    bus.publish(state(99))  # detached on close
    assert rows(db) == 50
    assert rows(db, "SELECT count(DISTINCT job) FROM events") == 50


def test_flush_interval_and_close(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    collector = AnalyticsCollector(db, AnalyticsSettings(flush_events=1000, flush_interval=0.2))
    collector.record(state(1))
    wait_until(lambda: rows(db) == 1)
    collector.settings = AnalyticsSettings(flush_events=1000, flush_interval=3600)
    collector.record(state(2))
    collector.close()  # always flushes on shutdown
    assert rows(db) == 2
    assert collector.stats.written == 2


def test_progress_is_sampled_per_file(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    with AnalyticsCollector(db, AnalyticsSettings(progress_interval=1.0)) as collector:
        for i in range(20):  # 20 ticks over 1.9 s for each of two files
            for key in ("a", "b"):
                collector.record(
                    FileProgress(key=key, done=i, total=19, speed=1.0, ts=100 + i / 10)
                )
    code = EventType.DOWNLOAD_PROGRESS.code
    kept = rows(
        db,
        f"SELECT group_concat(bytes) FROM events e JOIN files f ON f.id = e.file "
        f"WHERE type = {code} AND f.key = 'a'",
    )
    assert kept == "0,10,19"  # first, one a second, and the final tick
    assert collector.stats.sampled_out == 34


def test_only_droppable_samples_are_dropped_under_pressure(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    settings = AnalyticsSettings(max_pending=5, flush_events=10_000, flush_interval=3600)
    with AnalyticsCollector(db, settings) as collector:
        for i in range(10):
            collector.record(state(i))
            collector.record(MetricsSample(cpu_percent=1.0, memory_percent=2.0))
        assert collector.stats.dropped == 8  # the first 2 samples fit under the bound
    assert rows(db) == 10
    assert rows(db, "SELECT count(*) FROM metrics") == 2


def test_schema_pragmas_and_every_event_type(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    info = FileInfo(key="v1/f1", name="m.safetensors", host="b2.example", size=10)
    with AnalyticsCollector(db) as collector:
        collector.record(FileStarted(file=info))
        collector.record(NetworkConditionChanged(old="good", new="poor", mean_speed=1e5))
    conn = connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        names = {n for (n,) in conn.execute("SELECT name FROM event_types")}
        assert names == {t.value for t in EventType}
        plan = " ".join(
            str(r)
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM events WHERE type = 3 AND ts > 0"
            )
        )
        assert "events_type_ts" in plan
    finally:
        conn.close()


def test_newer_schema_and_foreign_files_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(CivitaiTuiError, match="upgrade civitai-tui") as err:
        connect(newer)
    assert err.value.kind == FailureKind.FILESYSTEM
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CivitaiTuiError, match="move it aside"):
        connect(garbage)
    assert garbage.read_bytes() == b"this is not sqlite" * 100  # nothing lost


def test_cleanup_by_age_and_size_cap(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    now = time.time()
    with AnalyticsCollector(db) as collector:
        for i in range(3000):
            collector.record(state(i, ts=now - 40 * 86400 + i))  # older than 30 days
        for i in range(3000):
            collector.record(state(i, ts=now - 86400 + i))
        collector.record(MetricsSample(cpu_percent=1, memory_percent=1, ts=now - 50 * 86400))
        result = collector.cleanup(days_to_keep=30, max_db_bytes=None)
    assert result.expired_rows == 3001
    assert rows(db) == 3000 and rows(db, "SELECT count(*) FROM metrics") == 0
    assert result.bytes_after < result.bytes_before  # incremental vacuum returned the pages
    capped = cleanup(db, days_to_keep=30, max_db_bytes=result.bytes_after // 2)
    assert capped.capped_rows > 0
    oldest_left = rows(db, "SELECT min(ts) FROM events")
    assert oldest_left > now - 86400 + capped.capped_rows - 1  # the oldest went first
