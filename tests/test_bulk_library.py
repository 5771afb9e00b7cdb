"""The library index: hash once, rehash only what changed, find by SHA256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from civitai_tui.bulk.library import LibraryIndex


def write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest().upper()


def test_scan_hashes_once_then_only_changes(tmp_path: Path) -> None:
    root = tmp_path / "models"
    a = write(root / "loras" / "a.safetensors", b"a" * 1000)
    b = write(root / "checkpoints" / "b.ckpt", b"b" * 2000)
    write(root / "notes.txt", b"not a model")
    write(root / ".cache" / "hidden.safetensors", b"hidden")
    index = LibraryIndex(tmp_path / "state.db")
    first = index.scan(root)
    assert (first.files, first.hashed, first.removed) == (2, 2, 0)
    second = index.scan(root)
    assert (second.files, second.hashed, second.removed) == (2, 0, 0)  # nothing rehashed
    assert index.find(a) == (root / "loras" / "a.safetensors").resolve()
    assert index.find(b.lower()) == (root / "checkpoints" / "b.ckpt").resolve()
    new = write(root / "loras" / "a.safetensors", b"changed")
    os.utime(root / "loras" / "a.safetensors", ns=(1, 1))
    (root / "checkpoints" / "b.ckpt").unlink()
    again = index.scan(root)
    assert (again.files, again.hashed, again.removed) == (1, 1, 1)
    assert index.find(a) is None and index.find(b) is None
    assert index.find(new) == (root / "loras" / "a.safetensors").resolve()
    index.close()


def test_find_ignores_files_changed_since_indexing(tmp_path: Path) -> None:
    index = LibraryIndex(tmp_path / "state.db")
    path = tmp_path / "m.safetensors"
    digest = write(path, b"x" * 100)
    index.add(path, digest)
    assert index.find(digest) == path.resolve()
    path.write_bytes(b"y" * 101)
    assert index.find(digest) is None
    reopened = LibraryIndex(tmp_path / "state.db")
    reopened.add(path, hashlib.sha256(b"y" * 101).hexdigest())
    assert reopened.find(hashlib.sha256(b"y" * 101).hexdigest()) == path.resolve()


def test_scan_of_one_root_leaves_another_alone(tmp_path: Path) -> None:
    index = LibraryIndex(tmp_path / "state.db")
    one = write(tmp_path / "one" / "a.gguf", b"1")
    two = write(tmp_path / "one-more" / "b.gguf", b"2")
    index.scan(tmp_path / "one")
    index.scan(tmp_path / "one-more")
    (tmp_path / "one" / "a.gguf").unlink()
    assert index.scan(tmp_path / "one").removed == 1
    assert index.find(one) is None and index.find(two) is not None
