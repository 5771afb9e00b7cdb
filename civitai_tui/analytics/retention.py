"""Retention of ``analytics.db``: age limit, size cap, incremental vacuum.

Deletes run in batches (per event type, using the ``(type, ts)`` index) so a
running writer is never blocked for long; freed pages go back to the file
system with ``PRAGMA incremental_vacuum`` and the WAL is truncated.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from civitai_tui.analytics.event_types import EventType
from civitai_tui.analytics.schema import connect

_BATCH = 50_000


@dataclass(frozen=True, slots=True)
class CleanupResult:
    """What :func:`cleanup` removed and how big the file is afterwards."""

    expired_rows: int
    capped_rows: int
    bytes_before: int
    bytes_after: int


def cleanup(
    db_path: Path, days_to_keep: int = 30, max_db_bytes: int | None = None
) -> CleanupResult:
    """Delete rows older than ``days_to_keep`` days, then the oldest until under the cap."""
    conn = connect(db_path)
    try:
        before = _file_bytes(conn)
        expired = _delete_older_than(conn, time.time() - days_to_keep * 86400.0)
        capped = _enforce_cap(conn, max_db_bytes) if max_db_bytes else 0
        if expired or capped:
            _forget_unused_files(conn)
            conn.execute("PRAGMA incremental_vacuum")
            conn.execute("ANALYZE")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return CleanupResult(expired, capped, before, _file_bytes(conn))
    finally:
        conn.close()


def _delete_older_than(conn: sqlite3.Connection, cutoff: float) -> int:
    deleted = 0
    for event_type in EventType:
        deleted += _batched(
            conn,
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE type=? AND ts<? LIMIT ?)",
            (event_type.code, cutoff),
        )
    deleted += _batched(
        conn, "DELETE FROM metrics WHERE rowid IN (SELECT rowid FROM metrics WHERE ts<? LIMIT ?)",
        (cutoff,),
    )  # fmt: skip
    return deleted


def _batched(conn: sqlite3.Connection, sql: str, params: tuple[float | int, ...]) -> int:
    total = 0
    while True:
        count = conn.execute(sql, (*params, _BATCH)).rowcount
        total += count
        if count < _BATCH:
            return total


def _enforce_cap(conn: sqlite3.Connection, max_bytes: int) -> int:
    """Delete the oldest events and metrics (by insertion order) until the data fits."""
    used = _used_bytes(conn)
    if used <= max_bytes:
        return 0
    share = min(1.0, 1.0 - max_bytes / used + 0.05)  # 5 % headroom so the next flush fits
    deleted = 0
    for table, key in (("events", "id"), ("metrics", "rowid")):
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        drop = int(rows * share)
        if drop:
            boundary = conn.execute(
                f"SELECT {key} FROM {table} ORDER BY {key} LIMIT 1 OFFSET ?", (drop - 1,)
            ).fetchone()[0]
            deleted += conn.execute(f"DELETE FROM {table} WHERE {key} <= ?", (boundary,)).rowcount
    return deleted


def _forget_unused_files(conn: sqlite3.Connection) -> None:
    conn.execute(
        "DELETE FROM files WHERE id NOT IN"
        " (SELECT DISTINCT file FROM events WHERE file IS NOT NULL)"
    )


def _used_bytes(conn: sqlite3.Connection) -> int:
    return (_pragma(conn, "page_count") - _pragma(conn, "freelist_count")) * _pragma(
        conn, "page_size"
    )


def _file_bytes(conn: sqlite3.Connection) -> int:
    return _pragma(conn, "page_count") * _pragma(conn, "page_size")


def _pragma(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
