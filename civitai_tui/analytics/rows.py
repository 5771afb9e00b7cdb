"""Bus events to ``analytics.db`` rows: the mapping, the dimension tables, the batch write.

:class:`RowWriter` is owned by the collector's writer thread. It scrubs every
string (see :mod:`civitai_tui.analytics.privacy`), interns file keys and short
labels into the ``files`` and ``names`` tables (cached in memory), and writes a
batch with ``executemany`` in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from civitai_tui.analytics.event_types import EventType
from civitai_tui.analytics.privacy import Scrubber
from civitai_tui.events import (
    Event,
    FileCompleted,
    FileFailed,
    FileInfo,
    FileProgress,
    FileStarted,
    JobStateChanged,
    MetricsSample,
    NetworkConditionChanged,
    OptimizerDecision,
    RetryScheduled,
    SecurityScanFinished,
)

EventRow = tuple[Any, ...]
_INSERT_METRIC = "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)"
_UPSERT_FILE = """
INSERT INTO files(key, name, host, model_id, version_id, file_id, size, model_name, model_type,
                  base_model, creator)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(key) DO UPDATE SET name=excluded.name, host=excluded.host,
    model_id=excluded.model_id, version_id=excluded.version_id, file_id=excluded.file_id,
    size=excluded.size, model_name=excluded.model_name, model_type=excluded.model_type,
    base_model=excluded.base_model, creator=excluded.creator
RETURNING id
"""

STARTED = EventType.DOWNLOAD_STARTED.code
PROGRESS = EventType.DOWNLOAD_PROGRESS.code
COMPLETED = EventType.DOWNLOAD_COMPLETED.code
FAILED = EventType.DOWNLOAD_FAILED.code
RETRY = EventType.RETRY_SCHEDULED.code
JOB_STATE = EventType.JOB_STATE_CHANGED.code
SCAN = EventType.SECURITY_SCAN.code
OPTIMIZER = EventType.OPTIMIZER_DECISION.code
NETWORK = EventType.NETWORK_CONDITION_CHANGED.code

#: The columns each event type fills, after ``ts``. Binding only these (not eleven
#: mostly-NULL parameters) halves the cost of an insert.
_COLUMNS: dict[int, tuple[str, ...]] = {
    STARTED: ("file", "job", "bytes"),
    PROGRESS: ("file", "bytes", "speed", "count"),
    COMPLETED: ("file", "job", "bytes", "speed", "duration", "count", "extra"),
    FAILED: ("file", "job", "label", "status", "count", "extra"),
    RETRY: ("file", "status", "duration", "count", "extra"),
    SCAN: ("file", "label", "extra"),
    JOB_STATE: ("job", "label", "extra"),
    OPTIMIZER: ("label", "extra"),
    NETWORK: ("label", "speed", "extra"),
}
_INSERT = {
    code: f"INSERT INTO events(ts, type, {', '.join(cols)}) "
    f"VALUES (?, {code}, {', '.join('?' * len(cols))})"
    for code, cols in _COLUMNS.items()
}


class RowWriter:
    """Converts bus events to rows and writes them; not thread-safe (one writer)."""

    def __init__(self, conn: sqlite3.Connection, scrubber: Scrubber) -> None:
        self._conn = conn
        self._scrub = scrubber
        self._names: dict[str, int] = {}
        self._files: dict[str, int] = {}
        self._described: dict[str, int] = {}  # files whose FileInfo is stored
        self._convert: dict[type[Event], Callable[[Any], tuple[int, EventRow]]] = {
            FileStarted: self._started,
            FileProgress: self._progress,
            FileCompleted: self._completed,
            FileFailed: self._failed,
            RetryScheduled: self._retry,
            SecurityScanFinished: self._scan,
            JobStateChanged: self._job_state,
            OptimizerDecision: self._optimizer,
            NetworkConditionChanged: self._network,
        }

    def write(self, events: Sequence[Event]) -> int:
        """Write ``events`` in one transaction; returns how many rows were stored."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            rows, metrics = self._rows(events)
            for code, batch in rows.items():
                conn.executemany(_INSERT[code], batch)
            conn.executemany(_INSERT_METRIC, metrics)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._names.clear()  # ids assigned inside the failed transaction are gone
            self._files.clear()
            self._described.clear()
            raise
        return sum(map(len, rows.values())) + len(metrics)

    def close(self) -> None:
        """Optimise, truncate the WAL and close the connection."""
        try:
            self._conn.execute("PRAGMA optimize")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._conn.close()

    def _rows(self, events: Sequence[Event]) -> tuple[dict[int, list[EventRow]], list[EventRow]]:
        rows: dict[int, list[EventRow]] = {code: [] for code in _COLUMNS}
        metrics: list[EventRow] = []
        convert = self._convert
        for event in events:
            handler = convert.get(type(event))
            if handler is not None:
                code, row = handler(event)
                rows[code].append(row)
            elif isinstance(event, MetricsSample):
                metrics.append(_metric(event))
        return rows, metrics

    # -- one converter per bus event class: (type code, values for its _COLUMNS) ------------

    def _started(self, e: FileStarted) -> tuple[int, EventRow]:
        return STARTED, (e.ts, self._file(e.file), self._name(e.file.job_id), e.resumed_bytes)

    def _progress(self, e: FileProgress) -> tuple[int, EventRow]:
        file = self._files.get(e.key) or self._file_key(e.key)
        return PROGRESS, (e.ts, file, e.done, e.speed, e.connections)

    def _completed(self, e: FileCompleted) -> tuple[int, EventRow]:
        # The fetched byte count is speed * duration; only unusual details go to JSON.
        speed = e.fetched_bytes / e.duration if e.duration > 0 else None
        extra = self._extra(connections=e.connections) if e.connections != 1 else None
        return COMPLETED, (e.ts, self._file(e.file), self._name(e.file.job_id), e.bytes, speed,
                           e.duration, e.retries, extra)  # fmt: skip

    def _failed(self, e: FileFailed) -> tuple[int, EventRow]:
        extra = self._extra(message=e.message, quarantined=e.quarantined)
        return FAILED, (e.ts, self._file(e.file), self._name(e.file.job_id), self._name(e.kind),
                        e.status, e.attempts, extra)  # fmt: skip

    def _retry(self, e: RetryScheduled) -> tuple[int, EventRow]:
        return RETRY, (e.ts, self._file_key(e.key), e.status, e.delay, e.attempt,
                       self._extra(reason=e.reason))  # fmt: skip

    def _scan(self, e: SecurityScanFinished) -> tuple[int, EventRow]:
        return SCAN, (e.ts, self._file_key(e.key), self._name(e.verdict),
                      self._extra(detail=e.detail))  # fmt: skip

    def _job_state(self, e: JobStateChanged) -> tuple[int, EventRow]:
        extra = self._extra(old=e.old, reason=e.reason)
        return JOB_STATE, (e.ts, self._name(e.job_id), self._name(e.new), extra)

    def _optimizer(self, e: OptimizerDecision) -> tuple[int, EventRow]:
        extra = self._extra(old=e.old, new=e.new, reason=e.reason, host=e.host)
        return OPTIMIZER, (e.ts, self._name(e.setting), extra)

    def _network(self, e: NetworkConditionChanged) -> tuple[int, EventRow]:
        return NETWORK, (e.ts, self._name(e.new), e.mean_speed, self._extra(old=e.old))

    # -- dimensions and extras ---------------------------------------------------------------

    def _name(self, value: str | None) -> int | None:
        if not value:
            return None
        ident = self._names.get(value)
        if ident is None:
            ident = self._names[value] = self._intern("names", "value", value)
        return ident

    def _file_key(self, key: str) -> int:
        ident = self._files.get(key)
        if ident is None:
            ident = self._files[key] = self._intern("files", "key", key)
        return ident

    def _intern(self, table: str, column: str, value: str) -> int:
        masked = self._scrub.text(value)
        self._conn.execute(f"INSERT OR IGNORE INTO {table}({column}) VALUES (?)", (masked,))
        row = self._conn.execute(f"SELECT id FROM {table} WHERE {column}=?", (masked,)).fetchone()
        return int(row[0])

    def _file(self, info: FileInfo) -> int:
        ident = self._described.get(info.key)
        if ident is not None:
            return ident
        s = self._scrub
        key, name = s.pair(info.key, info.name)  # unique per file: not worth caching
        params = (
            key, name, self._name(info.host), info.model_id, info.version_id, info.file_id,
            info.size, s.text(info.model_name), s.text(info.model_type), s.text(info.base_model),
            s.user(info.creator),
        )  # fmt: skip
        ident = self._files[info.key] = self._described[info.key] = self._conn.execute(
            _UPSERT_FILE, params
        ).fetchone()[0]
        return ident

    def _extra(self, **fields: Any) -> str | None:
        clean = {k: self._value(v) for k, v in fields.items() if v not in (None, "")}
        return json.dumps(clean, separators=(",", ":")) if clean else None

    def _value(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        return self._scrub.text(str(value))


def _metric(e: MetricsSample) -> EventRow:
    return (e.ts, e.cpu_percent, e.memory_percent, e.engine_cpu_percent, e.engine_rss,
            e.throughput, e.connections)  # fmt: skip
