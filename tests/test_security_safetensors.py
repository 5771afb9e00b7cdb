"""Safetensors header validation on real files."""

from __future__ import annotations

import json
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import blake3
import pytest

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security import pickles
from civitai_tui.security.pickles import PickleScanReport, pickle_data_size
from civitai_tui.security.safetensors import check_safetensors
from civitai_tui.security.verify import Expectations, verify_file


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


def safetensors(header: object, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (struct.pack("<Q", 64) + b"{}", "runs past the end of the file (10)"),
        (safetensors({"__metadata__": {"format": 1}}), "__metadata__ must map strings"),
        (safetensors({"__metadata__": ["x"]}), "__metadata__ must map strings"),
        (safetensors({"w": [1, 2]}), "tensor 'w' is not an object"),
        (
            safetensors({"w": {"dtype": "U8", "shape": [2], "data_offsets": [2, 0]}}, bytes(2)),
            "bad data_offsets [2, 0]",
        ),
        (
            safetensors({"w": {"dtype": "U8", "shape": [2], "data_offsets": [0, True]}}),
            "bad data_offsets",
        ),
        (
            safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 2]}}, bytes(2)),
            "do not match its shape and dtype",
        ),
    ],
)
def test_malformed_safetensors_are_refused_with_the_reason(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)
    with pytest.raises(CivitaiTuiError) as err:
        check_safetensors(path)
    assert err.value.kind is FailureKind.INVALID_FORMAT
    assert reason in err.value.message and "x.safetensors" in err.value.message


async def test_wrong_size_is_reported_before_any_hash_or_format_check(tmp_path: Path) -> None:
    path = tmp_path / "f.part"
    path.write_bytes(b"GGUF" + bytes(10))
    report = await verify_file(path, Expectations("m.gguf", 99, sha256="00" * 32))
    assert report.error is not None and report.error.kind is FailureKind.SIZE_MISMATCH
    assert report.error.message == "m.gguf has 14 bytes, 99 were expected"
    assert not report.verified and report.scan_verdict == "skipped"


async def test_blake3_is_checked_when_it_is_the_only_published_hash(tmp_path: Path) -> None:
    path = tmp_path / "f.part"
    data = b"GGUF" + bytes(range(200))
    path.write_bytes(data)
    good = blake3.blake3(data).hexdigest().upper()
    ok = await verify_file(path, Expectations("m.gguf", len(data), blake3=good))
    assert ok.verified and ok.error is None
    assert (ok.scan_verdict, ok.scan_detail) == ("clean", "GGUF magic present")
    bad = await verify_file(path, Expectations("m.gguf", len(data), blake3="AB" * 32))
    assert bad.error is not None and bad.error.kind is FailureKind.HASH_MISMATCH
    assert "BLAKE3 mismatch" in bad.error.message and good.lower() in bad.error.message


@pytest.mark.parametrize(
    ("name", "data", "verdict", "kind", "words"),
    [
        ("m.gguf", b"GGML" + bytes(8), "error", FailureKind.INVALID_FORMAT, "GGUF"),
        ("m.safetensors", b"\x00" * 16, "error", FailureKind.INVALID_FORMAT, "header"),
        ("README", b"hello there", "skipped", None, "files without an extension"),
        ("notes.txt", b"hello there", "skipped", None, "no format check for .txt"),
    ],
)
async def test_format_checks_follow_the_extension(
    tmp_path: Path, name: str, data: bytes, verdict: str, kind: FailureKind | None, words: str
) -> None:
    path = tmp_path / "f.part"
    path.write_bytes(data)
    report = await verify_file(path, Expectations(name, len(data)))
    assert report.scan_verdict == verdict and not report.verified
    assert (report.error.kind if report.error else None) is kind
    assert words in (report.error.message if report.error else report.scan_detail)


def test_scan_reports_describe_failures_and_findings() -> None:
    assert PickleScanReport(issues=0, error="boom").describe() == "the pickle scan failed: boom"
    assert PickleScanReport(issues=2).describe() == "the pickle scan found 2 issue(s)"
    assert not PickleScanReport(issues=0, error="boom").clean


def test_a_broken_zip_counts_as_all_pickle_data(tmp_path: Path) -> None:
    path = tmp_path / "m.ckpt"
    path.write_bytes(pickles.ZIP_MAGIC + bytes(100))
    assert pickle_data_size(path) == 104


async def test_a_scanner_that_dies_is_a_failed_scan(tmp_path: Path) -> None:
    report = await pickles._scan_in_child(tmp_path / "vanished.ckpt", 30, None)
    assert not report.clean and report.issues == 0
    assert report.error == "the scanner exited with code 1"
