"""The ``analytics.db`` file: connection settings, schema and migrations.

One SQLite file in WAL mode (``synchronous=NORMAL``, incremental auto-vacuum).
The schema is a compact star: ``events`` rows hold typed columns and integer
references into the ``files`` and ``names`` dimension tables; JSON (``extra``)
only carries rarely queried details. ``metrics`` holds the periodic system
samples. ``PRAGMA user_version`` is the schema version; :data:`MIGRATIONS`
upgrades an older file step by step.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from civitai_tui.analytics.event_types import EventType
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.private import private_file

DB_NAME = "analytics.db"

_V1 = """
CREATE TABLE names (
    id INTEGER PRIMARY KEY,
    value TEXT NOT NULL UNIQUE
);
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    host INTEGER REFERENCES names(id),
    model_id INTEGER,
    version_id INTEGER,
    file_id INTEGER,
    size INTEGER,
    model_name TEXT NOT NULL DEFAULT '',
    model_type TEXT NOT NULL DEFAULT '',
    base_model TEXT NOT NULL DEFAULT '',
    creator TEXT NOT NULL DEFAULT ''
);
CREATE TABLE event_types (
    code INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
-- One row per recorded event. label is the failure kind, scan verdict, new
-- job state, optimizer setting or network condition. count is the attempt,
-- retries or connections. duration is in seconds (or the retry delay).
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    type INTEGER NOT NULL REFERENCES event_types(code),
    file INTEGER REFERENCES files(id),
    job INTEGER REFERENCES names(id),
    label INTEGER REFERENCES names(id),
    status INTEGER,
    bytes INTEGER,
    speed REAL,
    duration REAL,
    count INTEGER,
    extra TEXT
);
CREATE INDEX events_type_ts ON events(type, ts);
CREATE TABLE metrics (
    ts REAL NOT NULL,
    cpu REAL NOT NULL,
    memory REAL NOT NULL,
    engine_cpu REAL NOT NULL,
    engine_rss INTEGER NOT NULL,
    throughput REAL NOT NULL,
    connections INTEGER NOT NULL
);
CREATE INDEX metrics_ts ON metrics(ts);
"""

#: ``MIGRATIONS[i]`` upgrades a database from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[str, ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """An open, migrated connection to the analytics database at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        private_file(path)  # SQLite would create it 0644 (and its -wal/-shm alike)
    except OSError as exc:
        raise CivitaiTuiError(
            FailureKind.FILESYSTEM, f"cannot open {path} ({exc.strerror or exc}); check the folder"
        ) from exc
    try:
        conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
        _configure(conn)
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise CivitaiTuiError(
            FailureKind.FILESYSTEM,
            f"{path} is not a usable analytics database ({exc}); move it aside and run again "
            "to start a fresh one",
        ) from exc
    return conn


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout=5000")
    if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
        # Must precede the first table; a no-op on an existing file.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA journal_size_limit=16777216")
    conn.execute("PRAGMA foreign_keys=OFF")


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION`, one migration per transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CivitaiTuiError(
                FailureKind.FILESYSTEM,
                f"analytics.db has schema version {version}, newer than this civitai-tui "
                f"understands ({SCHEMA_VERSION}); upgrade civitai-tui",
            )
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={step + 1}")
        conn.executemany(
            "INSERT OR IGNORE INTO event_types(code, name) VALUES (?, ?)",
            [(t.code, t.value) for t in EventType],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
