"""File digests (SHA256, BLAKE3) computed off the event loop, and their comparison.

Hashing a multi-GB file takes seconds, so it always runs in a worker thread
(``hashlib`` and ``blake3`` release the GIL). Published hashes are compared
case-insensitively (CivitAI prints them in uppercase hex).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import blake3

BLOCK = 1 << 20


def sha256_file_sync(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def blake3_file_sync(path: Path) -> str:
    hasher = blake3.blake3()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            hasher.update(block)
    return hasher.hexdigest()


async def sha256_file(path: Path) -> str:
    """The lowercase hex SHA256 of ``path``, computed in a thread."""
    return await asyncio.to_thread(sha256_file_sync, path)


async def blake3_file(path: Path) -> str:
    """The lowercase hex BLAKE3 of ``path``, computed in a thread."""
    return await asyncio.to_thread(blake3_file_sync, path)


def same_hash(a: str | None, b: str | None) -> bool:
    """True when both are given and equal ignoring case and surrounding space."""
    return bool(a and b) and a.strip().lower() == b.strip().lower()
