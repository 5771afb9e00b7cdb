"""Browse's on-disk caches: API answers with their age, and preview images.

Scrolling back, reopening the screen or restarting the engine must not spend the
API budget again, so every answer Browse gets is kept as one small JSON file
(``<state>/browse-cache/api/<sha256 of the key>.json``, holding the key, the
time it was stored and the value) and served while younger than
``browse.cache_ttl``. Images are kept as files too, bounded in total size (the
oldest-used go first). A cache file that cannot be read is a miss, one that
cannot be written is logged: the cache never fails a request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Images kept, in bytes, before the least recently used are removed.
IMAGE_CACHE_BYTES = 256 * 1024 * 1024


def _name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _replace(path: Path, data: bytes) -> None:
    """``data`` at ``path``, whole or not at all (a private temporary file, then a rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Cached:
    value: Any
    age_s: float


class AnswerCache:
    """JSON values by key, each with the time it was stored."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / f"{_name(key)}.json"

    def get(self, key: str, ttl: float) -> Cached | None:
        """The value stored under ``key`` if it is younger than ``ttl`` seconds."""
        try:
            data = json.loads(self._path(key).read_bytes())
            stored, value = float(data["stored"]), data["value"]
            if data["key"] != key:
                return None  # a hash collision: treat as a miss
        except (OSError, ValueError, KeyError, TypeError):
            return None
        age = time.time() - stored
        return Cached(value, max(0.0, age)) if age < ttl else None

    def get_many(self, keys: list[str], ttl: float) -> dict[str, Cached]:
        """The fresh entries among ``keys`` (blocking: run it in a thread for many)."""
        found = {key: self.get(key, ttl) for key in keys}
        return {key: hit for key, hit in found.items() if hit is not None}

    def put(self, key: str, value: Any) -> None:
        self.put_many({key: value})

    def put_many(self, values: dict[str, Any]) -> None:
        """Store ``values`` by key: renamed into place, not fsynced (a cache entry lost to a
        crash is only a miss)."""
        stored = time.time()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for key, value in values.items():
                body = json.dumps({"key": key, "stored": stored, "value": value}).encode()
                _replace(self._path(key), body)
        except OSError as exc:
            log.warning("browse cache: cannot write %s: %s", self.directory, exc)


class ImageCache:
    """Image bytes by URL, at most ``limit`` bytes in all (least recently used go first)."""

    def __init__(self, directory: Path, limit: int = IMAGE_CACHE_BYTES) -> None:
        self.directory = directory
        self.limit = limit

    def get(self, url: str) -> bytes | None:
        path = self.directory / _name(url)
        try:
            data = path.read_bytes()
            os.utime(path)  # recently used
        except OSError:
            return None
        return data

    def put(self, url: str, data: bytes) -> None:
        """Store ``data`` for ``url`` and trim the cache (blocking: run it in a thread)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _replace(self.directory / _name(url), data)
            self._trim()
        except OSError as exc:
            log.warning("browse image cache: cannot write %s: %s", self.directory, exc)

    def _trim(self) -> None:
        entries = []
        for entry in os.scandir(self.directory):
            try:
                stat = entry.stat()
            except OSError:
                continue
            entries.append((stat.st_mtime, stat.st_size, entry.path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.limit:
                break
            try:
                os.unlink(path)
            except OSError:
                continue
            total -= size
