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

from civitai_tui.bulk.jobs import BulkDownloadJob, JobFile, JobOptions
from civitai_tui.bulk.states import JobState
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.private import private_file
from civitai_tui.security.redact import mask_target

SCHEMA_VERSION = 3

#: A file: its request and its progress, one JSON value each (``bulk/jobs.JobFile``).
_FILES = """
CREATE TABLE IF NOT EXISTS files (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    ord INTEGER NOT NULL,
    request TEXT NOT NULL,
    progress TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
);
"""
_SCHEMA = (
    """
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
CREATE TABLE IF NOT EXISTS heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at REAL NOT NULL
);
"""
    + _FILES
)
#: Schema version -> the statements that bring the previous version up to it.
_MIGRATIONS = {
    2: (
        "ALTER TABLE files ADD COLUMN origin TEXT",
        "ALTER TABLE files ADD COLUMN method TEXT",
        "ALTER TABLE files ADD COLUMN warning TEXT",
    ),
    # A file's request and progress, one column each a version-2 file spread over twenty.
    3: (
        "ALTER TABLE files RENAME TO files_v2",
        _FILES,
        """INSERT INTO files (job_id, key, ord, request, progress)
        SELECT job_id, key, ord,
            json_object('info', json(info), 'source', json(source), 'dest_dir', dest_dir,
                'filename', filename, 'expected_size', json_extract(info, '$.size'),
                'sha256', sha256, 'blake3', blake3, 'remote_scans', json(remote_scans),
                'file_format', file_format, 'preview_url', preview_url),
            json_object('state', state, 'done', done, 'attempts', attempts,
                'last_status', last_status, 'error_kind', error_kind, 'error', error,
                'path', path, 'origin', origin, 'method', method, 'warning', warning)
        FROM files_v2""",
        "DROP TABLE files_v2",
    ),
}


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
        self._db.row_factory = sqlite3.Row
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
        row = _job_row(job)
        with self._transaction():
            # An upsert, not INSERT OR REPLACE: a replace would cascade-delete the files.
            self._db.execute(
                f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})"
                f" ON CONFLICT(id) DO UPDATE SET"
                f" {', '.join(f'{c} = excluded.{c}' for c in row if c != 'id')}",
                row,
            )
            if with_files:
                self._db.execute("DELETE FROM files WHERE job_id = ?", (job.id,))
                self._db.executemany(
                    "INSERT INTO files (job_id, key, ord, request, progress)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        (
                            job.id,
                            f.key,
                            i,
                            json.dumps(f.request.to_record()),
                            json.dumps(f.progress_record()),
                        )
                        for i, f in enumerate(job.files)
                    ),
                )

    def save_files(self, job_id: str, files: Iterable[JobFile]) -> None:
        """Update the progress of some files (their requests do not change)."""
        with self._transaction():
            self._db.executemany(
                "UPDATE files SET progress = ? WHERE job_id = ? AND key = ?",
                ((json.dumps(f.progress_record()), job_id, f.key) for f in files),
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
        for row in self._db.execute(
            "SELECT job_id, request, progress FROM files ORDER BY job_id, ord"
        ):
            files.setdefault(row["job_id"], []).append(
                JobFile.from_records(json.loads(row["request"]), json.loads(row["progress"]))
            )
        return [
            _job_from_row(row, files.get(row["id"], []))
            for row in self._db.execute("SELECT * FROM jobs ORDER BY seq")
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


def _job_row(job: BulkDownloadJob) -> dict[str, Any]:
    """A job's row, by column name (its files are rows of their own)."""
    return {
        "id": job.id,
        "seq": job.seq,
        "name": job.name,
        # Secrets in URLs stay in memory: see DirectSource for what a restart means.
        "targets": json.dumps([mask_target(t) for t in job.targets]),
        "options": json.dumps(job.options.to_dict()),
        "priority": job.priority,
        "state": str(job.state),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "expanded": int(job.expanded),
        "error": job.error,
    }


def _job_from_row(row: sqlite3.Row, files: list[JobFile]) -> BulkDownloadJob:
    return BulkDownloadJob(
        id=row["id"],
        seq=row["seq"],
        name=row["name"],
        targets=tuple(json.loads(row["targets"])),
        options=JobOptions.from_dict(json.loads(row["options"])),
        priority=row["priority"],
        state=JobState(row["state"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        expanded=bool(row["expanded"]),
        error=row["error"],
        files=files,
    )
