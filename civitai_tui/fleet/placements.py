"""What every engine has placed, by SHA256: fleet-wide dedupe (:class:`FleetPlacements`).

Each engine records the verified files it puts in place (downloaded, linked or
copied) under ``ctf:limits:placed:<sha256>``: one hash field per engine and
path, with whether the path is on **shared storage** (under one of
``fleet.shared_roots``: the same network file system, mounted at the same path
on every engine) and its size. Before downloading a file, an engine asks for
its SHA256: a copy another engine placed on shared storage, present here at the
same path with the same size, is linked or copied by the library's own
placement code (``bulk.dedupe``, :mod:`civitai_tui.download.dedupe`), which
hashes what it placed before the final rename: a stale or changed entry falls
back to a download, never to a wrong file. Files on an engine's local disks are
recorded too (``fleet status`` can tell where a model is) but never used by
another engine: the second milestone copies those over the LAN.

With the server unreachable, lookups find nothing (the file is downloaded) and
records are dropped with a log line: the index is a shortcut, never the truth.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from redis.asyncio import Redis

from civitai_tui.fleet.link import LimitsLink

log = logging.getLogger(__name__)

PREFIX = "ctf:limits:placed:"


def parse_roots(text: str) -> tuple[Path, ...]:
    """``fleet.shared_roots``: folders joined by ``:``, each made absolute."""
    return tuple(Path(part).expanduser().resolve() for part in text.split(":") if part.strip())


def on_shared(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def parse_entry(field: str, value: str) -> tuple[str, Path, bool, int] | None:
    """``(engine, path, shared, size)`` of one stored entry; None when malformed."""
    engine, sep, path = field.partition("\n")
    if not sep or not engine or not path.startswith("/"):
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    shared, size = data.get("shared"), data.get("size")
    if not isinstance(shared, bool) or not isinstance(size, int) or isinstance(size, bool):
        return None
    if size < 0 or "\0" in path:
        return None
    return engine, Path(path), shared, size


class FleetPlacements:
    """The fleet's SHA256 index: record this engine's files, find the others'."""

    def __init__(
        self, redis: Redis, link: LimitsLink, engine: str, shared_roots: Sequence[Path]
    ) -> None:
        self._redis = redis
        self._link = link
        self.engine = engine
        self.shared_roots = tuple(shared_roots)

    async def add(self, path: Path, sha256: str) -> None:
        """Record a verified file this engine has just placed at ``path``."""
        path = path.resolve()
        value = json.dumps({"shared": on_shared(path, self.shared_roots), "size": _size(path)})
        field = f"{self.engine}\n{path}"
        done = await self._link.call(lambda: self._redis.hset(_key(sha256), field, value))
        if done is None:
            log.info("fleet placements: %s not recorded (the fleet server is unreachable)", path)

    async def find(self, sha256: str, exclude: Path | None = None) -> Path | None:
        """A copy another engine placed on shared storage that is here, same size."""
        entries = await self._link.call(lambda: self._redis.hgetall(_key(sha256)))
        skip = exclude.resolve() if exclude is not None else None
        for field, value in (entries or {}).items():
            entry = parse_entry(_text(field), _text(value))
            if entry is None:
                continue
            engine, path, shared, size = entry
            if engine == self.engine or not shared or path == skip:
                continue
            if _size(path) == size:
                return path
        return None


def _key(sha256: str) -> str:
    return PREFIX + sha256.lower()


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1
