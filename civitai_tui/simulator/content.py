"""The bytes of every simulated file: generated on demand, never stored on disk.

A file is an optional *prefix* (a safetensors header, or a whole in-memory zip
checkpoint, or a small text file) followed by a deterministic *stream*: one
random 1 MiB block per file, repeated, with the absolute offset stamped into the
first 8 bytes of every 4 KiB page, so a segment written at the wrong offset
changes the file hash. ``read(start, end)`` gives random access to ``[start, end)``
fast enough to serve well over 1 GB/s.

Hashes (SHA256, BLAKE3, CRC32, AutoV1) are computed lazily on first need and
cached for the whole process (the content is a pure function of its spec), so
many simulators in one test session hash each file once.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import pickle
import random
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

import blake3

PAGE = 4096
BLOCK = 1 << 20
#: AutoV1: SHA-256 over the 64 KiB at offset 1 MiB; absent for files under 2 MiB.
AUTOV1_OFFSET = 0x100000
AUTOV1_LENGTH = 0x10000
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ContentKind(StrEnum):
    """How a file's bytes are laid out."""

    SAFETENSORS = "safetensors"  # valid header + tensor data stream
    PICKLE_ZIP = "pickle_zip"  # a torch-style zip: archive/data.pkl + a data blob
    TEXT = "text"  # a small text file (a YAML config)


@dataclass(frozen=True)
class ContentSpec:
    """Everything that determines a file's bytes."""

    key: int  # seeds the random block
    size_hint: int  # exact size for safetensors; approximate for the others
    kind: ContentKind
    malicious: bool = False  # pickle calls posix.system


@dataclass(frozen=True)
class FileHashes:
    """The true hashes of the bytes served (uppercase hex)."""

    sha256: str
    blake3: str
    crc32: str
    autov1: str | None

    def as_api(self) -> dict[str, str]:
        """CivitAI's ``hashes`` object: AutoV1, AutoV2, SHA256, CRC32, BLAKE3."""
        api = {"AutoV1": self.autov1} if self.autov1 is not None else {}
        api.update(AutoV2=self.sha256[:10], SHA256=self.sha256, CRC32=self.crc32)
        api["BLAKE3"] = self.blake3
        return api


_HASH_CACHE: dict[ContentSpec, FileHashes] = {}
_HASH_LOCK = threading.Lock()


class FileContent:
    """Random access to one file's deterministic bytes."""

    def __init__(self, spec: ContentSpec) -> None:
        self.spec = spec

    @cached_property
    def prefix(self) -> bytes:
        if self.spec.kind is ContentKind.SAFETENSORS:
            return safetensors_header(self.spec.size_hint, self.spec.key)
        if self.spec.kind is ContentKind.PICKLE_ZIP:
            return pickle_zip(self.spec.size_hint, self.spec.key, self.spec.malicious)
        return yaml_config(self.spec.key)

    @property
    def size(self) -> int:
        if self.spec.kind is ContentKind.SAFETENSORS:
            return self.spec.size_hint
        return len(self.prefix)

    @cached_property
    def _block(self) -> bytes:
        return random.Random(self.spec.key).randbytes(BLOCK)

    def _window(self, base: int) -> bytearray:
        """The stamped 1 MiB window of the stream starting at ``base``."""
        window = bytearray(self._block)
        for page in range(0, BLOCK, PAGE):
            struct.pack_into("<Q", window, page, base + page)
        return window

    def read(self, start: int, end: int) -> bytes:
        """The bytes ``[start, end)`` (clamped to the file)."""
        end = min(end, self.size)
        if start >= end:
            return b""
        prefix = self.prefix
        parts = [prefix[start:end]] if start < len(prefix) else []
        pos = max(start, len(prefix))
        while pos < end:
            base = pos - pos % BLOCK
            stop = min(end, base + BLOCK)
            parts.append(memoryview(self._window(base))[pos - base : stop - base])
            pos = stop
        return bytes(parts[0]) if len(parts) == 1 else b"".join(parts)

    def iter_chunks(self, start: int, end: int, chunk: int = BLOCK) -> Iterator[bytes]:
        """``[start, end)`` in pieces of at most ``chunk`` bytes."""
        for pos in range(start, end, chunk):
            yield self.read(pos, min(end, pos + chunk))

    def hashes(self) -> FileHashes:
        """The true hashes, computed once per process (CPU-bound: call off the loop)."""
        cached = _HASH_CACHE.get(self.spec)
        if cached is not None:
            return cached
        with _HASH_LOCK:
            cached = _HASH_CACHE.get(self.spec)
            if cached is None:
                cached = _HASH_CACHE[self.spec] = self._compute_hashes()
        return cached

    def hashes_ready(self) -> bool:
        return self.spec in _HASH_CACHE

    def _compute_hashes(self) -> FileHashes:
        sha, b3, crc = hashlib.sha256(), blake3.blake3(), 0
        for chunk in self.iter_chunks(0, self.size):
            sha.update(chunk)
            b3.update(chunk)
            crc = zlib.crc32(chunk, crc)
        autov1 = None
        if self.size >= 2 * AUTOV1_OFFSET:
            window = self.read(AUTOV1_OFFSET, AUTOV1_OFFSET + AUTOV1_LENGTH)
            autov1 = hashlib.sha256(window).hexdigest()[:8].upper()
        return FileHashes(
            sha256=sha.hexdigest().upper(),
            blake3=b3.hexdigest().upper(),
            crc32=f"{crc:08X}",
            autov1=autov1,
        )


def safetensors_header(total_size: int, key: int) -> bytes:
    """A valid safetensors header (u64 LE length + padded JSON) for a file of
    ``total_size`` bytes: its tensors' ``data_offsets`` exactly cover the rest."""
    length = 256
    while True:
        text = json.dumps(_tensor_table(total_size - 8 - length, key), separators=(",", ":"))
        if len(text) <= length:
            return struct.pack("<Q", length) + text.encode().ljust(length, b" ")
        length = -(-len(text) // 8) * 8


def _tensor_table(data_size: int, key: int) -> dict[str, object]:
    """Three F16 tensors and one U8 tensor taking the remainder."""
    if data_size < 8:
        raise ValueError(f"file too small for a safetensors layout ({data_size} data bytes)")
    quarter = (data_size // 4) & ~1
    table: dict[str, object] = {"__metadata__": {"format": "pt", "sim_key": str(key)}}
    offset = 0
    for index in range(3):
        table[f"model.layers.{index}.weight"] = {
            "dtype": "F16",
            "shape": [quarter // 2],
            "data_offsets": [offset, offset + quarter],
        }
        offset += quarter
    table["model.embed.bias"] = {
        "dtype": "U8",
        "shape": [data_size - offset],
        "data_offsets": [offset, data_size],
    }
    return table


#: GLOBAL posix.system, BINUNICODE "echo pwned", TUPLE1, REDUCE, STOP: never unpickle it.
MALICIOUS_PICKLE = b"\x80\x02cposix\nsystem\nX\n\x00\x00\x00echo pwned\x85R."


def pickle_zip(blob_size: int, key: int, malicious: bool) -> bytes:
    """A torch-style checkpoint zip, built in memory (no torch needed)."""
    if malicious:
        data_pkl = MALICIOUS_PICKLE
    else:
        state = collections.OrderedDict([("epoch", 3), ("global_step", 1200 + key % 1000)])
        data_pkl = pickle.dumps(state, protocol=2)
    members = {
        "archive/data.pkl": data_pkl,
        "archive/version": b"3\n",
        "archive/data/0": random.Random(key).randbytes(blob_size),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_DATE), data)
    return buffer.getvalue()


def yaml_config(key: int) -> bytes:
    """A small inference config, the kind published next to checkpoints."""
    rng = random.Random(key)
    lines = ["model:", "  target: ldm.models.diffusion.ddpm.LatentDiffusion", "  params:"]
    lines += [f"    param_{i}: {rng.randint(1, 4096)}" for i in range(400)]
    return ("\n".join(lines) + "\n").encode()


def tiny_png(width: int, height: int, key: int) -> bytes:
    """A valid solid-colour RGB PNG of ``width`` x ``height`` pixels."""
    rng = random.Random(key)
    pixel = bytes(rng.randrange(256) for _ in range(3))
    raw = b"".join(b"\x00" + pixel * width for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
