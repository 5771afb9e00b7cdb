"""The library index: the SHA256 of every model file under a destination folder.

Re-running a bulk job must download only what is new, even when the files
came from elsewhere (another tool, a manual copy). The index lives in
``state.db`` (table ``library``); a scan walks a folder once, hashing only the
files whose size or modification time changed since the last scan, and every
file the engine completes is added as it lands, so the index stays current
without rehashing.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from civitai_tui.private import private_file
from civitai_tui.security.hashing import sha256_file_sync

MODEL_SUFFIXES = frozenset(
    {".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx"}
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS library (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS library_sha256 ON library(sha256);
"""


@dataclass(frozen=True)
class ScanResult:
    """What one scan of a folder did."""

    files: int
    hashed: int
    removed: int


def _model_files(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if Path(name).suffix.lower() in MODEL_SUFFIXES:
                yield Path(folder, name)


class Placements(Protocol):
    """Copies other engines placed (fleet mode): found by SHA256, told of new ones."""

    async def find(self, sha256: str, exclude: Path | None = None) -> Path | None: ...
    async def add(self, path: Path, sha256: str) -> None: ...


class LibraryIndex:
    """SHA256 by path for the model files the engine knows about (thread-safe)."""

    def __init__(self, db_path: Path) -> None:
        self._db = sqlite3.connect(
            private_file(db_path), isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def scan(self, root: Path) -> ScanResult:
        """Bring the index up to date with ``root`` (blocking: run it in a thread)."""
        root = root.resolve()
        known = {row[0]: (row[1], row[2]) for row in self._under(root, "path, size, mtime_ns")}
        seen, hashed = set(), 0
        for path in _model_files(root):
            try:
                stat = path.stat()
            except OSError:
                continue
            seen.add(str(path))
            if known.get(str(path)) == (stat.st_size, stat.st_mtime_ns):
                continue
            try:
                digest = sha256_file_sync(path)
            except OSError:
                continue
            self._put(path, stat.st_size, stat.st_mtime_ns, digest)
            hashed += 1
        gone = [p for p in known if p not in seen]
        with self._lock:
            self._db.executemany("DELETE FROM library WHERE path = ?", ((p,) for p in gone))
        return ScanResult(files=len(seen), hashed=hashed, removed=len(gone))

    def entries(self, root: Path) -> list[tuple[Path, str]]:
        """(path, SHA256) of every indexed file under ``root`` (scan it first), by path."""
        rows = self._under(root.resolve(), "path, sha256")
        return sorted((Path(path), sha256) for path, sha256 in rows)

    def _under(self, root: Path, columns: str) -> list[tuple[str, ...]]:
        with self._lock:
            return self._db.execute(
                f"SELECT {columns} FROM library WHERE path >= ? AND path < ?",
                (str(root) + os.sep, str(root) + chr(ord(os.sep) + 1)),
            ).fetchall()

    def add(self, path: Path, sha256: str) -> None:
        """Record a file whose hash is already known (a download that just landed)."""
        stat = path.stat()
        self._put(path.resolve(), stat.st_size, stat.st_mtime_ns, sha256)

    def holds(self, path: Path, sha256: str) -> bool:
        """``path`` is in the index with this SHA256 and unchanged since it was hashed."""
        try:
            resolved = path.resolve()
            stat = resolved.stat()
        except OSError:
            return False
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns, sha256 FROM library WHERE path = ?", (str(resolved),)
            ).fetchone()
        return row is not None and (row[0], row[1], row[2]) == (
            stat.st_size,
            stat.st_mtime_ns,
            sha256.upper(),
        )

    def find(self, sha256: str, exclude: Path | None = None) -> Path | None:
        """A file in the index with this SHA256 that is still there, unchanged (other
        than ``exclude``)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT path, size, mtime_ns FROM library WHERE sha256 = ?", (sha256.upper(),)
            ).fetchall()
        skip = str(exclude.resolve()) if exclude is not None else None
        for path, size, mtime_ns in rows:
            if path == skip:
                continue
            try:
                stat = os.stat(path)
            except OSError:
                continue
            if (stat.st_size, stat.st_mtime_ns) == (size, mtime_ns):
                return Path(path)
        return None

    def _put(self, path: Path, size: int, mtime_ns: int, sha256: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO library (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(path) DO UPDATE SET size = excluded.size,"
                " mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256",
                (str(path), size, mtime_ns, sha256.upper()),
            )
