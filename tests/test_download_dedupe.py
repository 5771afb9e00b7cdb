"""Placing a library copy at the asked path on real file systems: link, clone or copy, verified."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from civitai_tui.download.dedupe import SourceChanged, place_copy, temp_path

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest().upper()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "library" / "model.safetensors"
    path.parent.mkdir()
    path.write_bytes(DATA)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    return path


def test_link_mode_on_one_file_system_makes_a_hard_link(source: Path, tmp_path: Path) -> None:
    final = tmp_path / "asked" / "sub" / "model.safetensors"
    assert place_copy(source, final, SHA, "link") == "hardlink"
    assert final.stat().st_ino == source.stat().st_ino and final.read_bytes() == DATA
    assert not temp_path(final).exists()


def test_copy_mode_never_shares_the_inode_and_keeps_the_mtime(source: Path, tmp_path: Path) -> None:
    final = tmp_path / "asked" / "model.safetensors"
    final.parent.mkdir()
    final.write_bytes(b"an older, different file")  # replaced atomically
    assert place_copy(source, final, SHA.lower(), "copy") in ("reflink", "copy")
    assert final.stat().st_ino != source.stat().st_ino and final.read_bytes() == DATA
    assert final.stat().st_mtime_ns == source.stat().st_mtime_ns
    assert not temp_path(final).exists()


def test_another_file_system_falls_back_to_a_copy(source: Path, tiny_disk: Path) -> None:
    final = tiny_disk / "model.safetensors"  # tmpfs: no hard link across, no FICLONE
    assert place_copy(source, final, SHA, "link") == "copy"
    assert final.read_bytes() == DATA and not temp_path(final).exists()


def test_a_changed_copy_is_refused_and_leaves_nothing(source: Path, tmp_path: Path) -> None:
    source.write_bytes(DATA[:-1] + b"!")
    final = tmp_path / "asked" / "model.safetensors"
    with pytest.raises(SourceChanged, match="no longer has SHA256"):
        place_copy(source, final, SHA, "link")
    assert list(final.parent.iterdir()) == []


def test_a_vanished_copy_raises_and_leaves_nothing(source: Path, tmp_path: Path) -> None:
    source.unlink()
    final = tmp_path / "asked" / "model.safetensors"
    for mode in ("link", "copy"):
        with pytest.raises(FileNotFoundError):
            place_copy(source, final, SHA, mode)
    assert list(final.parent.iterdir()) == []
