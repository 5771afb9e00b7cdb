"""Safetensors header validation on real files."""

from __future__ import annotations

import json
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import pytest

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security.safetensors import check_safetensors


def build(tensors: dict[str, tuple[str, list[int], int]], pad: int = 0) -> bytes:
    header: dict = {"__metadata__": {"format": "pt"}}
    data = b""
    for name, (dtype, shape, itemsize) in tensors.items():
        n = itemsize
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += bytes(range(256)) * (n // 256) + bytes(n % 256)
    raw = json.dumps(header).encode() + b" " * pad
    return struct.pack("<Q", len(raw)) + raw + data


def write(tmp_path: Path, data: bytes, name: str = "m.safetensors") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


GOOD = {"a": ("F16", [4, 8], 2), "b": ("U8", [100], 1), "c": ("F32", [0], 4)}


def test_good_file_passes(tmp_path: Path) -> None:
    check_safetensors(write(tmp_path, build(GOOD, pad=6)))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (build(GOOD)[:-10], "data section size mismatch"),
        (build(GOOD) + b"x", "data section size mismatch"),
        (b"\x01\x02", "shorter than the 8-byte"),
        (pickle.dumps(OrderedDict(a=1), protocol=4) * 20, "header length"),
        (struct.pack("<Q", 5) + b"{bad}", "not valid JSON"),
        (struct.pack("<Q", 4) + b"[1] ", "does not start with '{'"),
        (build({"a": ("Q9", [2], 1)}), "unknown dtype"),
        (build({"a": ("F16", [-1], 2)}), "bad shape"),
    ],
)
def test_bad_files_give_reasons(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(CivitaiTuiError) as info:
        check_safetensors(write(tmp_path, data))
    assert info.value.kind is FailureKind.INVALID_FORMAT
    assert reason in info.value.message and "m.safetensors" in info.value.message


def test_overlapping_offsets_rejected(tmp_path: Path) -> None:
    header = {
        "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
        "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]},
    }
    raw = json.dumps(header).encode()
    with pytest.raises(CivitaiTuiError, match="gap or overlap"):
        check_safetensors(write(tmp_path, struct.pack("<Q", len(raw)) + raw + bytes(6)))
