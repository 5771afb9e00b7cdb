"""The pickle scan itself: run in a worker thread, or as a child process.

picklescan (strict mode) names the globals of every pickle it finds, but it
calls data it cannot parse "probably not a pickle" and passes it, and it looks
into zips one level deep only. So this module walks the containers itself (zip
archives, nested up to :data:`MAX_DEPTH`, ``.npy`` object arrays, legacy torch
files) and hands each pickle stream to picklescan, and it disassembles every
stream that claims to be a pickle (by name or at the top level) up to its
``STOP``: a stream that cannot be parsed is reported as ``unparsed``, never
passed. Nothing is ever unpickled.

Kept apart from :mod:`civitai_tui.security.pickles` so that the child process
(``python -m civitai_tui.security.pickle_child FILE [NAME]``, which prints the
verdict as JSON) imports picklescan and the standard library only.
"""

from __future__ import annotations

import ast
import json
import os
import pickletools
import struct
import sys
import zipfile
import zlib
from typing import IO

#: Names a pickle may hide behind; ``torch.load`` and friends open them all.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".npy", ".pth.tar", ".bin", ".pt", ".pth", ".ckpt")
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
NUMPY_MAGIC = b"\x93NUMPY"
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
#: Pickle protocol 2+ streams open with PROTO and the protocol number.
PROTO_MAGICS = tuple(bytes([0x80, n]) for n in range(6))
#: ``torch.save``'s legacy format: five pickles (this number first), then raw storages.
TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PICKLES = 5
MAX_DEPTH = 3
MAX_MEMBERS = 100_000
MAX_NUMPY_HEADER = 1 << 20
#: How much of a file of another type is disassembled to see whether it is a pickle.
SNIFF_BYTES = 64 * 1024


def is_pickle_name(name: str) -> bool:
    return name.lower().endswith(PICKLE_SUFFIXES)


def is_container_head(head: bytes) -> bool:
    """Whether ``head`` starts a zip, numpy, 7z or protocol 2+ pickle stream."""
    return head.startswith(
        (ZIP_MAGIC, EMPTY_ZIP_MAGIC, NUMPY_MAGIC, SEVEN_ZIP_MAGIC, *PROTO_MAGICS)
    )


def looks_like_pickle(fh: IO[bytes]) -> bool:
    """Whether the first :data:`SNIFF_BYTES` of ``fh`` disassemble as a pickle (or its start)."""
    window = fh.read(SNIFF_BYTES)
    try:
        for op, _, _ in pickletools.genops(window):
            if op.name == "STOP":
                return True
    except ValueError as exc:
        return "exhausted" in str(exc) and len(window) == SNIFF_BYTES
    except Exception:
        return False
    return False


class Verdict:
    """What the walk found: globals (with picklescan's safety), and what it could not read."""

    def __init__(self) -> None:
        self.issues = 0
        self.globals: list[tuple[str, str]] = []  # (module.name, safety)
        self.unparsed: list[str] = []
        self.errors: list[str] = []

    def add(self, result) -> None:
        self.issues += result.issues_count
        self.globals += [(f"{g.module}.{g.name}", g.safety.value) for g in result.globals]
        if result.scan_err:
            self.errors.append("picklescan could not finish parsing a pickle")

    def as_dict(self) -> dict:
        return {
            "issues": self.issues,
            "error": "; ".join(self.errors[:3]) or None,
            "unparsed": "; ".join(self.unparsed[:3]) or None,
            "dangerous": sorted({g for g, safety in self.globals if safety == "dangerous"}),
            "globals": sorted({g for g, _ in self.globals}),
        }


class Clamped:
    """A stream whose ``read(n)`` never asks for more than what is left of its ``size``.

    A pickle opcode may announce a length of 2**63: the disassembler would ask the
    file for that many bytes at once.
    """

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self._fh, self._size = fh, size

    def read(self, n: int = -1) -> bytes:
        left = max(0, self._size - self._fh.tell())
        return self._fh.read(left if n is None or n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self._fh.readline()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def seekable(self) -> bool:
        return True


def scan(path: str, name: str | None = None) -> dict:
    """Scan ``path`` (shown as ``name``) and return a JSON-ready verdict."""
    verdict = Verdict()
    with open(path, "rb") as raw:
        fh = Clamped(raw, os.fstat(raw.fileno()).st_size)
        _scan_stream(fh, name or os.path.basename(path), verdict, depth=0, strict=True)
    return verdict.as_dict()


def _scan_stream(fh: Clamped, label: str, verdict: Verdict, depth: int, strict: bool) -> None:
    head = fh.read(8)
    fh.seek(0)
    if head.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)):
        _scan_zip(fh, label, verdict, depth, strict)
    elif head.startswith(NUMPY_MAGIC):
        _scan_numpy(fh, label, verdict, strict)
    elif head.startswith(SEVEN_ZIP_MAGIC):
        if strict:
            verdict.unparsed.append(f"{label} is a 7z archive, which cannot be looked into")
    else:
        _scan_pickle(fh, label, verdict, strict)


def _scan_pickle(fh: Clamped, label: str, verdict: Verdict, strict: bool) -> None:
    from picklescan.scanner import scan_pickle_bytes

    start = fh.tell()
    if not fh.read(1):
        if strict:
            verdict.unparsed.append(f"{label} is empty")
        return
    fh.seek(start)
    legacy = _first_pickle_is_torch_magic(fh)
    fh.seek(start)
    # A legacy torch file is five pickles and then raw storage bytes: parse only those.
    count = TORCH_LEGACY_PICKLES if legacy else 1
    try:
        for _ in range(count):
            verdict.add(scan_pickle_bytes(fh, label, multiple_pickles=not legacy, strict=True))
    except Exception as exc:  # picklescan on hostile input: a failed scan, never a crash
        verdict.errors.append(f"picklescan failed on {label} ({type(exc).__name__}: {exc})"[:200])
    if strict:
        fh.seek(start)
        problem = _parse_problem(fh, count)
        if problem:
            verdict.unparsed.append(f"{label} cannot be parsed as a pickle ({problem})")


def _first_pickle_is_torch_magic(fh: Clamped) -> bool:
    values = []
    try:
        for op, arg, _ in pickletools.genops(fh):
            if op.name == "STOP" or len(values) > 2:
                break
            values.append(arg)
    except Exception:
        return False
    return TORCH_MAGIC_NUMBER in values


def _parse_problem(fh: Clamped, count: int) -> str | None:
    """Why the first ``count`` pickles of ``fh`` do not disassemble to their STOP, or None."""
    for _ in range(count):
        try:
            for _op in pickletools.genops(fh):
                pass
        except Exception as exc:
            return str(exc)[:120] or type(exc).__name__
    return None


def _scan_zip(fh: Clamped, label: str, verdict: Verdict, depth: int, strict: bool) -> None:
    from picklescan.relaxed_zipfile import RelaxedZipFile

    if depth >= MAX_DEPTH:
        verdict.unparsed.append(f"{label}: zip archives nested more than {MAX_DEPTH} deep")
        return
    try:
        archive = RelaxedZipFile(fh)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        if strict:
            verdict.unparsed.append(f"{label} is not a readable zip archive ({exc})")
        return
    with archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
        if len(members) > MAX_MEMBERS:
            verdict.unparsed.append(f"{label} holds more than {MAX_MEMBERS} members")
            return
        for info in members:
            _scan_member(archive, info, f"{label}:{info.filename}", verdict, depth)


def _scan_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, verdict: Verdict, depth: int
) -> None:
    named = is_pickle_name(info.filename)
    try:
        with archive.open(info) as member:
            if named or is_container_head(member.read(8)):
                member.seek(0)
                clamped = Clamped(member, info.file_size)
                _scan_stream(clamped, label, verdict, depth + 1, strict=named)
    except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, NotImplementedError) as exc:
        verdict.unparsed.append(f"{label} could not be read ({exc})")
    except zlib.error as exc:
        verdict.unparsed.append(f"{label} could not be decompressed ({exc})")


def _scan_numpy(fh: Clamped, label: str, verdict: Verdict, strict: bool) -> None:
    """A ``.npy`` holds a pickle only for object dtypes; anything unclear is scanned as one."""
    fh.read(len(NUMPY_MAGIC))
    major = fh.read(2)[:1]
    width = "<H" if major == b"\x01" else "<I"
    raw = fh.read(struct.calcsize(width))
    if len(raw) < struct.calcsize(width):
        verdict.unparsed.append(f"{label} is a truncated .npy file")
        return
    (length,) = struct.unpack(width, raw)
    if length > MAX_NUMPY_HEADER:
        verdict.unparsed.append(f"{label} has a .npy header of {length} bytes")
        return
    try:
        header = ast.literal_eval(fh.read(length).decode("latin-1"))
        descr = header["descr"]
    except (ValueError, SyntaxError, TypeError, KeyError, MemoryError, RecursionError):
        verdict.unparsed.append(f"{label} has an unreadable .npy header")
        return
    if isinstance(descr, str) and "O" not in descr:
        return  # plain numbers: no pickle follows the header
    _scan_pickle(fh, label, verdict, strict=True)


if __name__ == "__main__":
    json.dump(scan(*sys.argv[1:3]), sys.stdout)
