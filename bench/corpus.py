"""The served files: generated once with random bytes, reused, and checked after download.

The corpus lives in a directory per file size (``<root>/<size>B/``) so runs with
different ``--size`` values do not regenerate each other's files. A file is
written to a temporary name and renamed, so an interrupted generation never
leaves a short file that a later run would take as valid.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

_WRITE_BLOCK = 4 * 1024 * 1024
_HASH_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class Corpus:
    """``count`` files of ``size`` bytes each in ``directory``."""

    directory: Path
    names: tuple[str, ...]
    size: int

    @property
    def total_bytes(self) -> int:
        return self.size * len(self.names)

    def path(self, name: str) -> Path:
        return self.directory / name


def ensure_corpus(root: Path, count: int, size: int) -> Corpus:
    """Return ``count`` random files of ``size`` bytes under ``root``, writing missing ones."""
    if count < 1 or size < 1:
        raise ValueError(f"need at least one file of at least one byte (got {count} x {size})")
    directory = root / f"{size}B"
    directory.mkdir(parents=True, exist_ok=True)
    # .dat: a name no content check claims (random bytes named .bin are refused as
    # unparsable pickles, as they should be), so the bench times the transfer.
    names = tuple(f"bench-{index:03d}.dat" for index in range(count))
    for name in names:
        target = directory / name
        if not (target.is_file() and target.stat().st_size == size):
            _write_random(target, size)
    return Corpus(directory=directory, names=names, size=size)


def _write_random(target: Path, size: int) -> None:
    partial = target.with_name(target.name + ".tmp")
    with partial.open("wb") as out:
        remaining = size
        while remaining:
            block = os.urandom(min(_WRITE_BLOCK, remaining))
            out.write(block)
            remaining -= len(block)
        out.flush()
        os.fsync(out.fileno())  # no writeback of the corpus during the first timed runs
    partial.replace(target)


def warm_page_cache(corpus: Corpus) -> None:
    """Read every served file once, so no tool pays for cold reads the others don't."""
    for name in corpus.names:
        with corpus.path(name).open("rb", buffering=0) as source:
            while source.read(_WRITE_BLOCK):
                pass


def sha256_of(path: Path) -> str:
    """Hex SHA256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def find_downloaded(dest: Path, name: str) -> Path | None:
    """Where a tool put ``name`` under ``dest`` (some tools use subfolders)."""
    direct = dest / name
    if direct.is_file():
        return direct
    return next((p for p in dest.rglob(name) if p.is_file()), None)


def verify_download(
    corpus: Corpus, dest: Path, checked_name: str, expected_sha256: str
) -> list[str]:
    """Problems with the copy in ``dest``: missing files, wrong sizes, a wrong SHA256.

    Every file's size is checked; the SHA256 of ``checked_name`` only, so a
    broken run cannot look fast while the check stays cheap.
    """
    problems: list[str] = []
    for name in corpus.names:
        found = find_downloaded(dest, name)
        if found is None:
            problems.append(f"{name}: missing")
        elif (actual := found.stat().st_size) != corpus.size:
            problems.append(f"{name}: {actual} bytes, expected {corpus.size}")
    if not problems:
        found = find_downloaded(dest, checked_name)
        if found is not None and sha256_of(found) != expected_sha256:
            problems.append(f"{checked_name}: SHA256 differs from the served file")
    return problems
