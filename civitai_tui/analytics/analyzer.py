"""The analyzer: SQL aggregates over ``analytics.db`` for one period, as an AnalyticsReport.

Aggregates run in SQLite on the ``(type, ts)`` index (only completed, failed,
retry, scan and optimizer rows are read; progress rows never are); percentiles,
trends and patterns are computed in Python from the small aggregated results.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from civitai_tui.analytics import stats
from civitai_tui.analytics.patterns import Evidence, find_patterns, notes, recommendations
from civitai_tui.analytics.rows import COMPLETED, FAILED, OPTIMIZER, RETRY, SCAN, STARTED
from civitai_tui.analytics.schema import DB_NAME, connect
from civitai_tui.analytics.summary import (
    AnalyticsReport,
    Breakdown,
    Count,
    DayStat,
    OptimizerSummary,
    Period,
    ThroughputPoint,
    Totals,
    Trend,
)
from civitai_tui.config import state_dir

UNSAFE_VERDICTS = ("dangerous", "error")
#: Failures a retry may fix (a corrupt transfer) and refusals it never will (the content).
VERIFY_KINDS = ("hash_mismatch", "size_mismatch", "invalid_format")
UNSAFE_KINDS = ("unsafe",)
PSEUDONYM = re.compile(r"u_[0-9a-f]{16}")
RETRY_STORM_PER_MINUTE = 10
_RANGE = "e.ts >= :since AND e.ts < :until"


@dataclass(frozen=True, slots=True)
class _Finished:
    """Completed and failed downloads that finished within one hour."""

    hour: int  # hours since the epoch, in the period's clock
    completed: int
    failed: int
    bytes: int


class AnalyticsAnalyzer:
    """Analyses any period of ``analytics.db`` (default: the state dir's)."""

    def __init__(self, db_path: Path | None = None) -> None:
        self.db_path = db_path or state_dir() / DB_NAME

    def analyze(
        self,
        since: float | None = None,
        until: float | None = None,
        *,
        utc_offset: int | None = None,
    ) -> AnalyticsReport:
        """Analyse ``[since, until)`` (defaults: the first event, now).

        ``utc_offset`` (seconds east of UTC) sets the clock for hours and days;
        default: this machine's current offset.
        """
        conn = connect(self.db_path)
        try:
            period = self._period(conn, since, until, utc_offset)
            return _Analysis(conn, period).run()
        finally:
            conn.close()

    def analyze_days(self, days: int, *, utc_offset: int | None = None) -> AnalyticsReport:
        """Analyse the last ``days`` days up to now."""
        now = time.time()
        return self.analyze(now - days * 86400.0, now, utc_offset=utc_offset)

    @staticmethod
    def _period(
        conn: sqlite3.Connection, since: float | None, until: float | None, offset: int | None
    ) -> Period:
        if offset is None:
            offset = time.localtime().tm_gmtoff
        until = time.time() if until is None else until
        if since is None:
            first = conn.execute("SELECT min(ts) FROM events").fetchone()[0]
            since = min(first, until) if first is not None else until
        return Period(since, until, offset)


class _Analysis:
    """One run of the analyzer over one period and connection."""

    def __init__(self, conn: sqlite3.Connection, period: Period) -> None:
        self.conn = conn
        self.period = period
        self.args = {"since": period.since, "until": period.until, "off": period.utc_offset}

    def _rows(self, sql: str, **extra: object) -> list[tuple]:
        return self.conn.execute(sql, {**self.args, **extra}).fetchall()

    def run(self) -> AnalyticsReport:
        speeds = self._speeds()  # (ts, host, speed) of completed downloads
        finished = self._finished()
        hosts = self._breakdown("n.value", "LEFT JOIN names n ON n.id = f.host")
        daily = self._daily(finished)
        bucket_s, throughput = self._throughput(finished)
        evidence = Evidence(
            totals=self._totals(),
            hosts=hosts,
            hourly=_fold(finished, lambda h: h % 24, 24),
            weekdays=_fold(finished, lambda h: (h // 24 + 3) % 7, 7),  # 1970-01-01: Thursday
            failures_by_cause=self._failures_by_cause(),
            host_failure_causes=self._host_failure_causes(),
            retry_storms=self._retry_storms(),
            verify_failures=self._refused(VERIFY_KINDS, ()),
            unsafe_files=self._refused(UNSAFE_KINDS, UNSAFE_VERDICTS),
            overall_median_speed=stats.median_or_none([s for _, _, s in speeds]),
            active_days=sum(1 for d in daily if d.completed + d.failed),
        )
        optimizer = self._optimizer()
        patterns = find_patterns(evidence)
        return AnalyticsReport(
            period=self.period,
            generated_at=time.time(),
            totals=evidence.totals,
            speed=stats.speed_stats([s for _, _, s in speeds]),
            failures_by_cause=evidence.failures_by_cause,
            hosts=hosts,
            model_types=self._breakdown("f.model_type", ""),
            base_models=self._breakdown("f.base_model", ""),
            daily=daily,
            hourly=evidence.hourly,
            weekdays=evidence.weekdays,
            throughput=throughput,
            speed_histogram=stats.histogram([s for _, _, s in speeds]),
            trends=self._trends(speeds),
            patterns=patterns,
            optimizer=optimizer,
            recommendations=recommendations(evidence, patterns),
            throughput_bucket_s=bucket_s,
            creator_names=self._creator_names(),
            notes=notes(evidence),
        )

    # -- totals and breakdowns -------------------------------------------------------------

    def _totals(self) -> Totals:
        by_type = {
            row[0]: row[1:]
            for row in self._rows(
                "SELECT type, count(*), total(bytes), total(duration), total(speed * duration) "
                "FROM events e WHERE type IN (:a, :b, :c, :d, :e) AND "
                + _RANGE + " GROUP BY type",
                a=STARTED, b=COMPLETED, c=FAILED, d=RETRY, e=SCAN,
            )
        }  # fmt: skip
        done, size, duration, fetched = by_type.get(COMPLETED, (0, 0.0, 0.0, 0.0))
        failed = by_type.get(FAILED, (0,))[0]
        return Totals(
            started=by_type.get(STARTED, (0,))[0],
            completed=done,
            failed=failed,
            success_rate=stats.ratio(done, done + failed),
            bytes=int(size),
            fetched_bytes=int(fetched),
            total_duration=duration,
            mean_duration=duration / done if done else None,
            retries=by_type.get(RETRY, (0,))[0],
            scans=by_type.get(SCAN, (0,))[0],
            unsafe_scans=self._count_labels(SCAN, UNSAFE_VERDICTS),
        )

    def _count_labels(self, event_type: int, labels: tuple[str, ...]) -> int:
        marks = ", ".join("?" * len(labels))
        sql = (
            "SELECT count(*) FROM events e JOIN names n ON n.id = e.label "
            f"WHERE e.type = ? AND e.ts >= ? AND e.ts < ? AND n.value IN ({marks})"
        )
        p = self.period
        return self.conn.execute(sql, (event_type, p.since, p.until, *labels)).fetchone()[0]

    def _speeds(self) -> list[tuple[float, str, float]]:
        return self._rows(
            "SELECT e.ts, coalesce(n.value, ''), e.speed FROM events e "
            "JOIN files f ON f.id = e.file LEFT JOIN names n ON n.id = f.host "
            "WHERE e.type = :t AND e.speed IS NOT NULL AND " + _RANGE,
            t=COMPLETED,
        )

    def _breakdown(self, column: str, join: str) -> list[Breakdown]:
        """Completed, failed, bytes and the median speed per value of ``column``."""
        rows = self._rows(
            f"SELECT coalesce({column}, ''), e.type, count(*), total(e.bytes) FROM events e "
            f"JOIN files f ON f.id = e.file {join} WHERE e.type IN (:c, :f) AND {_RANGE} "
            f"GROUP BY 1, e.type",
            c=COMPLETED,
            f=FAILED,
        )
        per_name: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for name, event_type, count, size in rows:
            entry = per_name[name or "unknown"]
            entry[0 if event_type == COMPLETED else 1] += count
            entry[2] += int(size)
        by_name: dict[str, list[float]] = defaultdict(list)
        for name, speed in self._rows(
            f"SELECT coalesce({column}, ''), e.speed FROM events e JOIN files f ON f.id = e.file "
            f"{join} WHERE e.type = :c AND e.speed IS NOT NULL AND {_RANGE}",
            c=COMPLETED,
        ):
            by_name[name or "unknown"].append(speed)
        out = [
            Breakdown(name, done, failed, size, stats.ratio(done, done + failed),
                      stats.median_or_none(by_name[name]))
            for name, (done, failed, size) in per_name.items()
        ]  # fmt: skip
        return sorted(out, key=lambda b: (-(b.completed + b.failed), b.name))

    def _failures_by_cause(self) -> list[Count]:
        rows = self._rows(
            "SELECT coalesce(n.value, 'unknown'), count(*) FROM events e "
            "LEFT JOIN names n ON n.id = e.label WHERE e.type = :t AND "
            + _RANGE + " GROUP BY e.label ORDER BY 2 DESC, 1",
            t=FAILED,
        )  # fmt: skip
        return [Count(name, count) for name, count in rows]

    def _host_failure_causes(self) -> dict[str, list[Count]]:
        """Each host's failures by cause, the commonest first."""
        rows = self._rows(
            "SELECT coalesce(h.value, ''), coalesce(k.value, 'unknown'), count(*) FROM events e "
            "JOIN files f ON f.id = e.file LEFT JOIN names h ON h.id = f.host "
            "LEFT JOIN names k ON k.id = e.label WHERE e.type = :t AND "
            + _RANGE + " GROUP BY 1, 2 ORDER BY 3 DESC, 2",
            t=FAILED,
        )  # fmt: skip
        causes: dict[str, list[Count]] = defaultdict(list)
        for host, cause, count in rows:
            causes[host or "unknown"].append(Count(cause, count))
        return dict(causes)

    # -- time series -------------------------------------------------------------------------

    def _finished(self) -> list[_Finished]:
        rows = self._rows(
            "SELECT CAST((e.ts + :off) / 3600 AS INTEGER) AS h, "
            "sum(e.type = :c), sum(e.type = :f), total(CASE WHEN e.type = :c THEN e.bytes END) "
            "FROM events e WHERE e.type IN (:c, :f) AND " + _RANGE + " GROUP BY h ORDER BY h",
            c=COMPLETED,
            f=FAILED,
        )
        return [_Finished(h, done, failed, int(size)) for h, done, failed, size in rows]

    def _daily(self, finished: list[_Finished]) -> list[DayStat]:
        days: dict[int, list[int]] = {}
        first = int((self.period.since + self.period.utc_offset) // 86400)
        last = int((max(self.period.until - 1e-6, self.period.since) + self.period.utc_offset)
                   // 86400)  # fmt: skip
        for day in range(first, last + 1) if last - first <= 366 else ():
            days[day] = [0, 0, 0]
        for f in finished:
            entry = days.setdefault(f.hour // 24, [0, 0, 0])
            entry[0] += f.completed
            entry[1] += f.failed
            entry[2] += f.bytes
        return [
            DayStat(
                dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat(),
                done, failed, size, stats.ratio(done, done + failed),
            )
            for day, (done, failed, size) in sorted(days.items())
        ]  # fmt: skip

    def _throughput(self, finished: list[_Finished]) -> tuple[int, list[ThroughputPoint]]:
        """Bucket length and every bucket of the period, empty ones too (a time axis, not dots)."""
        hours = _bucket_hours(self.period.until - self.period.since)
        seconds = hours * 3600
        off = self.period.utc_offset
        buckets: dict[int, int] = defaultdict(int)
        for f in finished:
            buckets[f.hour // hours] += f.bytes
        first = int((self.period.since + off) // seconds)
        last = int((max(self.period.until - 1e-6, self.period.since) + off) // seconds)
        if last - first <= MAX_BUCKETS:
            for b in range(first, last + 1):
                buckets.setdefault(b, 0)
        return seconds, [
            ThroughputPoint(b * seconds - off, size / seconds)
            for b, size in sorted(buckets.items())
        ]

    def _trends(self, speeds: list[tuple[float, str, float]]) -> list[Trend]:
        """Second half of the period against the first (the seed's split-half comparison)."""
        mid = (self.period.since + self.period.until) / 2
        halves = {
            row[0]: row[1:]
            for row in self._rows(
                "SELECT e.ts >= :mid, sum(e.type = :c), sum(e.type = :f), "
                "total(CASE WHEN e.type = :c THEN e.bytes END) FROM events e "
                "WHERE e.type IN (:c, :f) AND " + _RANGE + " GROUP BY 1",
                mid=mid, c=COMPLETED, f=FAILED,
            )
        }  # fmt: skip
        done, failed, size = zip(*(halves.get(h, (0, 0, 0.0)) for h in (0, 1)), strict=True)
        speed_halves = ([s for t, _, s in speeds if t < mid], [s for t, _, s in speeds if t >= mid])
        means = [stats.mean_or_none(s) for s in speed_halves]
        rates = [stats.ratio(d, d + f) for d, f in zip(done, failed, strict=True)]
        return [
            stats.trend("downloads", float(done[0] + failed[0]), float(done[1] + failed[1])),
            stats.trend("success_rate", *rates),
            stats.trend("bytes", *map(float, size)),
            stats.trend("mean_speed", *means),
        ]

    # -- patterns' evidence --------------------------------------------------------------------

    def _retry_storms(self) -> list[int]:
        rows = self._rows(
            "SELECT count(*) FROM events e WHERE e.type = :t AND " + _RANGE
            + " GROUP BY CAST(e.ts / 60 AS INTEGER) HAVING count(*) >= :n",
            t=RETRY, n=RETRY_STORM_PER_MINUTE,
        )  # fmt: skip
        return [r[0] for r in rows]

    def _refused(self, kinds: tuple[str, ...], verdicts: tuple[str, ...]) -> list[Count]:
        """Files that failed with one of ``kinds``, or were scanned with one of ``verdicts``."""
        sql = (
            "SELECT coalesce(nullif(f.name, ''), f.key), count(*) FROM events e "
            "JOIN files f ON f.id = e.file JOIN names n ON n.id = e.label "
            "WHERE e.ts >= ? AND e.ts < ? AND ("
            f"(e.type = ? AND n.value IN ({', '.join('?' * len(kinds))})) OR "
            f"(e.type = ? AND n.value IN ({', '.join('?' * len(verdicts))}))) "
            "GROUP BY e.file ORDER BY 2 DESC, 1"
        )
        p = self.period
        params = (p.since, p.until, FAILED, *kinds, SCAN, *verdicts)
        return [Count(name, n) for name, n in self.conn.execute(sql, params)]

    def _creator_names(self) -> str:
        """How the creator names of the period's files are stored (the report claims only that)."""
        names = [
            row[0]
            for row in self._rows(
                "SELECT DISTINCT f.creator FROM events e JOIN files f ON f.id = e.file "
                "WHERE f.creator != '' AND " + _RANGE
            )
        ]
        hidden = sum(1 for n in names if PSEUDONYM.fullmatch(n))
        if not names:
            return "none"
        return "pseudonymised" if hidden == len(names) else "clear" if not hidden else "mixed"

    def _optimizer(self) -> list[OptimizerSummary]:
        """Per setting: how often the optimizer changed it, and its latest decision."""
        rows = self._rows(
            "SELECT n.value, e.ts, json_extract(e.extra, '$.new'), json_extract(e.extra, "
            "'$.reason') FROM events e JOIN names n ON n.id = e.label "
            "WHERE e.type = :t AND " + _RANGE + " ORDER BY e.ts, e.id",
            t=OPTIMIZER,
        )
        latest: dict[str, OptimizerSummary] = {}
        for name, ts, new, reason in rows:
            count = latest[name].decisions + 1 if name in latest else 1
            value = "" if new is None else str(new)
            latest[name] = OptimizerSummary(name, count, value, reason or "", ts)
        return [latest[name] for name in sorted(latest)]


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
#: A throughput series longer than this (a period of years) keeps only non-empty buckets.
MAX_BUCKETS = 2000


def _fold(finished: list[_Finished], key: Callable[[int], int], size: int) -> list[int]:
    out = [0] * size
    for f in finished:
        out[key(f.hour)] += f.completed + f.failed
    return out


def _bucket_hours(span_s: float) -> int:
    """Hourly buckets up to two weeks, then 6-hourly up to ~2 months, then daily."""
    if span_s <= 14 * 86400:
        return 1
    return 6 if span_s <= 62 * 86400 else 24
