"""``state.db``: jobs and their files in SQLite (WAL), so a restart continues the queue.

The store owns the schema and the row mapping; the manager decides when to
save. Writes are small and grouped in one transaction per call; a write that
fails (a full disk, a read-only folder) is rolled back whole and raised as a
:class:`StoreError` that says what to do, so the caller can keep memory and
disk in step.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from civitai_tui.bulk.jobs import BulkDownloadJob, FileState, JobFile, JobOptions
from civitai_tui.bulk.states import JobState
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import FileInfo
from civitai_tui.private import private_file
from civitai_tui.security.redact import mask_target

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    targets TEXT NOT NULL,
    options TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    expanded INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE TABLE IF NOT EXISTS files (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    ord INTEGER NOT NULL,
    info TEXT NOT NULL,
    dest_dir TEXT NOT NULL,
    source TEXT NOT NULL,
    filename TEXT,
    sha256 TEXT,
    blake3 TEXT,
    remote_scans TEXT NOT NULL,
    file_format TEXT,
    preview_url TEXT,
    state TEXT NOT NULL,
    done INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    last_status INTEGER,
    error_kind TEXT,
    error TEXT,
    path TEXT,
    origin TEXT,
    method TEXT,
    warning TEXT,
    PRIMARY KEY (job_id, key)
);
CREATE INDEX IF NOT EXISTS files_sha256 ON files(sha256);
CREATE TABLE IF NOT EXISTS heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at REAL NOT NULL
);
"""
#: Schema version -> the statements that bring the previous version up to it.
_MIGRATIONS = {
    2: (
        "ALTER TABLE files ADD COLUMN origin TEXT",
        "ALTER TABLE files ADD COLUMN method TEXT",
        "ALTER TABLE files ADD COLUMN warning TEXT",
    ),
}

_JOB_COLUMNS = (
    "id, seq, name, targets, options, priority, state, created_at, started_at, finished_at,"
    " expanded, error"
)
_JOB_UPDATES = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _JOB_COLUMNS.split(",")[1:])
_FILE_COLUMNS = (
    "job_id, key, ord, info, dest_dir, source, filename, sha256, blake3, remote_scans,"
    " file_format, preview_url, state, done, attempts, last_status, error_kind, error, path,"
    " origin, method, warning"
)


class StoreError(CivitaiTuiError):
    """A write to ``state.db`` failed; nothing of it was saved."""

    def __init__(self, path: Path, exc: sqlite3.Error) -> None:
        reason = str(exc)
        full = "full" in reason.lower()
        advice = "free space on its disk" if full else "check that its folder is writable"
        super().__init__(
            FailureKind.DISK_FULL if full else FailureKind.FILESYSTEM,
            f"could not save to {path} ({reason}); {advice}, nothing else needs doing: "
            "the engine saves again by itself",
        )


class JobStore:
    """Reads and writes jobs and files in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(
            private_file(path), isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{path} was written by a newer civitai-tui (schema {version})")
        if 0 < version < SCHEMA_VERSION:
            with self._transaction():  # all steps or none: a kill mid-way leaves the old one
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[step]:
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def next_seq(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()
        return int(row[0])

    def save_job(self, job: BulkDownloadJob, *, with_files: bool = True) -> None:
        """Insert or replace a job (and, by default, all its files)."""
        with self._transaction():
            # An upsert, not INSERT OR REPLACE: a replace would cascade-delete the files.
            self._db.execute(
                f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({_marks(12)})"
                f" ON CONFLICT(id) DO UPDATE SET {_JOB_UPDATES}",
                _job_row(job),
            )
            if with_files:
                self._db.execute("DELETE FROM files WHERE job_id = ?", (job.id,))
                self._db.executemany(
                    f"INSERT INTO files ({_FILE_COLUMNS}) VALUES ({_marks(22)})",
                    (_file_row(job.id, i, f) for i, f in enumerate(job.files)),
                )

    def save_files(self, job_id: str, files: Iterable[JobFile]) -> None:
        """Update the mutable columns of some files."""
        with self._transaction():
            self._db.executemany(
                "UPDATE files SET state=?, done=?, attempts=?, last_status=?, error_kind=?,"
                " error=?, path=?, filename=?, origin=?, method=?, warning=?"
                " WHERE job_id=? AND key=?",
                (
                    (
                        str(f.state),
                        f.done,
                        f.attempts,
                        f.last_status,
                        f.error_kind,
                        f.error,
                        f.path,
                        f.filename,
                        f.origin,
                        f.method,
                        f.warning,
                        job_id,
                        f.key,
                    )
                    for f in files
                ),
            )

    def touch(self) -> None:
        """A real (tiny) write: whether the database takes writes again (else StoreError)."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO heartbeat VALUES (1, ?)", (time.time(),))

    def delete_job(self, job_id: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def load_jobs(self) -> list[BulkDownloadJob]:
        """Every job with its files, in arrival order."""
        files: dict[str, list[JobFile]] = {}
        for row in self._db.execute(f"SELECT {_FILE_COLUMNS} FROM files ORDER BY job_id, ord"):
            files.setdefault(row[0], []).append(_file_from_row(row))
        return [
            _job_from_row(row, files.get(row[0], []))
            for row in self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY seq")
        ]

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)


class _Transaction:
    """One write transaction: committed whole, or rolled back whole and raised as StoreError."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(self._path, exc) from exc

    def __exit__(self, exc_type: object, exc: BaseException | None, _: object) -> None:
        try:
            if exc_type is None:
                self._db.execute("COMMIT")
        except sqlite3.Error as commit_failed:
            exc = commit_failed
        if self._db.in_transaction:  # an error, or a COMMIT that failed (SQLITE_FULL)
            self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StoreError(self._path, exc) from exc


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _job_row(job: BulkDownloadJob) -> tuple[Any, ...]:
    return (
        job.id,
        job.seq,
        job.name,
        # Secrets in URLs stay in memory: see DirectSource for what a restart means.
        json.dumps([mask_target(t) for t in job.targets]),
        json.dumps(job.options.to_dict()),
        job.priority,
        str(job.state),
        job.created_at,
        job.started_at,
        job.finished_at,
        int(job.expanded),
        job.error,
    )


def _job_from_row(row: tuple[Any, ...], files: list[JobFile]) -> BulkDownloadJob:
    return BulkDownloadJob(
        id=row[0],
        seq=row[1],
        name=row[2],
        targets=tuple(json.loads(row[3])),
        options=JobOptions.from_dict(json.loads(row[4])),
        priority=row[5],
        state=JobState(row[6]),
        created_at=row[7],
        started_at=row[8],
        finished_at=row[9],
        expanded=bool(row[10]),
        error=row[11],
        files=files,
    )


def _file_row(job_id: str, ord_: int, f: JobFile) -> tuple[Any, ...]:
    info = {k: getattr(f.info, k) for k in f.info.__dataclass_fields__}
    return (
        job_id,
        f.key,
        ord_,
        json.dumps(info),
        f.dest_dir,
        json.dumps({k: mask_target(v) if k == "url" else v for k, v in f.source.items()}),
        f.filename,
        f.sha256,
        f.blake3,
        json.dumps(list(f.remote_scans)),
        f.file_format,
        f.preview_url,
        str(f.state),
        f.done,
        f.attempts,
        f.last_status,
        f.error_kind,
        f.error,
        f.path,
        f.origin,
        f.method,
        f.warning,
    )


def _file_from_row(row: tuple[Any, ...]) -> JobFile:
    return JobFile(
        info=FileInfo(**json.loads(row[3])),
        dest_dir=row[4],
        source=json.loads(row[5]),
        filename=row[6],
        sha256=row[7],
        blake3=row[8],
        remote_scans=tuple(json.loads(row[9])),
        file_format=row[10],
        preview_url=row[11],
        state=FileState(row[12]),
        done=row[13],
        attempts=row[14],
        last_status=row[15],
        error_kind=row[16],
        error=row[17],
        path=row[18],
        origin=row[19],
        method=row[20],
        warning=row[21],
    )
