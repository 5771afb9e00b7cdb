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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civitai_tui.atomic import write_atomic

log = logging.getLogger(__name__)

#: Images kept, in bytes, before the least recently used are removed.
IMAGE_CACHE_BYTES = 256 * 1024 * 1024


def _name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


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

    def put(self, key: str, value: Any) -> None:
        body = json.dumps({"key": key, "stored": time.time(), "value": value})
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomic(self._path(key), body.encode())
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
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomic(self.directory / _name(url), data)
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
