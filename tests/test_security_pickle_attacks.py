"""Malicious model fixtures: the payload behind every opcode opening, in every container.

Every file here would run ``posix.system`` when loaded; none is ever loaded. The
scan must refuse each one, whatever the pickle opens with, whatever the file is
called, however deeply it is packed.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from civitai_tui.errors import FailureKind
from civitai_tui.security import pickle_child
from civitai_tui.security.verify import Expectations, verify_file

#: The body of every attack: GLOBAL posix.system, MARK, a string, TUPLE, REDUCE, STOP.
PAYLOAD = b'cposix\nsystem\n(S"touch /tmp/x"\ntR.'

#: A well-formed argument for every pickletools argument type.
ARGS = {
    "uint1": b"\x00",
    "uint2": b"\x00\x00",
    "uint4": b"\x00" * 4,
    "uint8": b"\x00" * 8,
    "int4": b"\x00" * 4,
    "long1": b"\x00",
    "long4": b"\x00" * 4,
    "string1": b"\x00",
    "string4": b"\x00" * 4,
    "bytes1": b"\x00",
    "bytes4": b"\x00" * 4,
    "bytes8": b"\x00" * 8,
    "bytearray8": b"\x00" * 8,
    "unicodestring1": b"\x00",
    "unicodestring4": b"\x00" * 4,
    "unicodestring8": b"\x00" * 8,
    "stringnl": b"'a'\n",
    "stringnl_noescape": b"a\n",
    "stringnl_noescape_pair": b"a\nb\n",
    "unicodestringnl": b"a\n",
    "decimalnl_short": b"1\n",
    "decimalnl_long": b"1L\n",
    "floatnl": b"1.0\n",
    "float8": b"\x00" * 8,
}


def opening(op: pickletools.OpcodeInfo) -> bytes:
    """``op`` with a well-formed argument (stack effects are not simulated: nor is a scanner)."""
    return op.code.encode("latin-1") + (ARGS[op.arg.name] if op.arg else b"")


def scan_bytes(data: bytes, name: str) -> dict:
    fd, path = tempfile.mkstemp()
    try:
        os.write(fd, data)
        os.close(fd)
        return pickle_child.scan(path, name)
    finally:
        os.unlink(path)


OPENERS = [op for op in pickletools.opcodes if op.name != "STOP"]


def test_every_argument_type_has_a_fixture() -> None:
    assert {op.arg.name for op in OPENERS if op.arg} <= ARGS.keys()


async def _verdict(tmp_path: Path, name: str, data: bytes):
    path = tmp_path / "f.part"
    path.write_bytes(data)
    return await verify_file(path, Expectations(name=name, size=len(data)))


async def test_the_reported_bypass_is_refused(tmp_path: Path) -> None:
    report = await _verdict(tmp_path, "pytorch_lora_weights.bin", b"\x88" + b"0" + PAYLOAD)
    assert report.error is not None and report.error.kind is FailureKind.UNSAFE
    assert report.scan_verdict == "dangerous" and "posix.system" in report.error.message


@pytest.mark.parametrize("op", OPENERS, ids=lambda op: op.name)
async def test_a_pickle_opening_with_any_opcode_is_refused(tmp_path: Path, op) -> None:
    report = await _verdict(tmp_path, "weights.bin", opening(op) + PAYLOAD)
    assert report.error is not None and report.error.kind is FailureKind.UNSAFE, op.name
    # STACK_GLOBAL with nothing before it makes picklescan itself give up: still refused.
    assert "posix.system" in report.error.message or "picklescan failed" in report.error.message


@given(st.lists(st.sampled_from(OPENERS), min_size=1, max_size=6))
def test_any_sequence_of_openings_hides_nothing(ops: list) -> None:
    data = b"".join(opening(op) for op in ops) + PAYLOAD
    verdict = scan_bytes(data, "weights.pt")
    assert "posix.system" in verdict["dangerous"] or "picklescan failed" in verdict["error"]


@given(st.binary(max_size=64))
def test_arbitrary_bytes_named_like_a_pickle_never_pass_unexamined(data: bytes) -> None:
    """Any verdict is allowed except a crash, or "clean" for bytes that do not parse."""
    verdict = scan_bytes(data, "weights.bin")
    if verdict["unparsed"] is None and verdict["error"] is None:
        ops = list(pickletools.genops(data))  # it really parses up to STOP
        assert ops[-1][0].name == "STOP"


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy_object_array(body: bytes) -> bytes:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (63 - len(header) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


def _legacy_torch(body: bytes) -> bytes:
    return (
        pickle.dumps(pickle_child.TORCH_MAGIC_NUMBER, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps({"protocol_version": 1001}, protocol=2)
        + body
        + pickle.dumps([], protocol=2)
        + bytes(64)  # raw storage bytes follow the five pickles
    )


EVIL = b"\x88" + b"0" + PAYLOAD

CONTAINERS = {
    "raw .pkl": ("model.pkl", EVIL),
    "raw .pickle": ("model.pickle", EVIL),
    "raw .joblib": ("model.joblib", EVIL),
    "raw .pth.tar": ("model.pth.tar", EVIL),
    "raw .ckpt": ("model.ckpt", EVIL),
    "raw .pt": ("model.pt", EVIL),
    "raw .pth": ("model.pth", EVIL),
    "protocol 4 under another name": ("model.weights", b"\x80\x04" + EVIL),
    "protocol 0 under another name": ("model.weights", PAYLOAD),
    "legacy torch": ("model.pt", _legacy_torch(EVIL)),
    ".npy object array": ("array.npy", _npy_object_array(EVIL)),
    "torch zip": ("model.ckpt", _zip({"archive/data.pkl": EVIL, "archive/data/0": bytes(8)})),
    "zip .pkl under a neutral name": ("bundle.zip", _zip({"x/model.pkl": EVIL})),
    "zip member found by its PROTO magic": ("bundle.zip", _zip({"blob": b"\x80\x04" + EVIL})),
    "zip in a zip": ("bundle.zip", _zip({"inner.zip": _zip({"data.pkl": EVIL})})),
    "zip in a zip in a .bin": ("m.bin", _zip({"a.zip": _zip({"b.zip": _zip({"c.pkl": EVIL})})})),
    ".npy in a zip": ("arrays.npz", _zip({"a.npy": _npy_object_array(EVIL)})),
}


@pytest.mark.parametrize("case", CONTAINERS, ids=list(CONTAINERS))
async def test_every_container_is_opened(tmp_path: Path, case: str) -> None:
    name, data = CONTAINERS[case]
    report = await _verdict(tmp_path, name, data)
    assert report.error is not None and report.error.kind is FailureKind.UNSAFE, case
    assert "posix.system" in report.error.message


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("m.pkl", b"\x80\x04garbage", "cannot be parsed"),
        ("m.ckpt", b"PK\x03\x04" + bytes(60), "not a readable zip"),
        ("m.zip", _zip({"weights.pkl": b"\xff\xfe"}), "cannot be parsed"),
        ("m.pt", b"7z\xbc\xaf\x27\x1c" + bytes(26), "7z archive"),
        ("m.npy", b"\x93NUMPY\x01\x00\xff\xff" + b"{", "unreadable .npy header"),
        ("deep.zip", _zip({"1.zip": _zip({"2.zip": _zip({"3.zip": _zip({})})})}), "nested"),
    ],
)
async def test_what_cannot_be_examined_is_never_passed(
    tmp_path: Path, name: str, data: bytes, words: str
) -> None:
    report = await _verdict(tmp_path, name, data)
    assert report.error is not None and report.scan_verdict == "error"
    assert words in report.error.message


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("model.ckpt", _zip({"archive/data.pkl": pickle.dumps({"w": [1.0]}, protocol=2)})),
        ("model.pt", _legacy_torch(pickle.dumps({"w": 1}, protocol=2))),
        ("plain.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}" + bytes(16)),
        ("images.zip", _zip({"a.png": b"\x89PNG" + bytes(20), "notes.txt": b"hi"})),
        ("notes.txt", b"just some text\n"),
    ],
)
async def test_clean_models_and_other_files_still_pass(
    tmp_path: Path, name: str, data: bytes
) -> None:
    report = await _verdict(tmp_path, name, data)
    assert report.error is None, report
