"""The checks a downloaded file must pass before it may enter the model folder.

In order: the size; the SHA256 published by the API (or BLAKE3 when only that is
given; with no published hash the computed SHA256 is recorded and the file is
"unverified"); the format (a ``.safetensors`` must pass the header check, a
``.gguf`` starts with ``GGUF``, and every file that can hold a pickle is
pickle-scanned: by name, any of :data:`~civitai_tui.security.pickle_child.PICKLE_SUFFIXES`
whatever its first bytes, and by content, any other file that is a zip, 7z or
``.npy`` container or disassembles as a pickle). The caller moves the file into
place only when ``error`` is None, and quarantines it otherwise.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security.hashing import blake3_file, same_hash, sha256_file
from civitai_tui.security.pickle_child import is_container_head, is_pickle_name, looks_like_pickle
from civitai_tui.security.pickles import scan_pickle, unsafe
from civitai_tui.security.safetensors import check_safetensors


@dataclass(frozen=True)
class Expectations:
    """What the file should be: from the API metadata and the server."""

    name: str
    size: int
    sha256: str | None = None
    blake3: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    sha256: str | None  # None when no hash was published (and none computed)
    verified: bool  # a published hash matched
    scan_verdict: str  # "clean" | "dangerous" | "error" | "skipped"
    scan_detail: str = ""
    error: CivitaiTuiError | None = None


async def verify_file(
    path: Path, expect: Expectations, sha256: str | None = None, pickle_timeout: float = 120.0
) -> VerifyReport:
    """Check ``path`` (the finished ``.part``) against ``expect``; never raises for a bad file.

    ``sha256`` is the digest already computed while downloading, if any; without
    one, the SHA256 is computed only when there is a published one to check.
    """
    actual_size = os.path.getsize(path)
    digest = sha256 or (await sha256_file(path) if expect.sha256 else None)
    if actual_size != expect.size:
        error = CivitaiTuiError(
            FailureKind.SIZE_MISMATCH,
            f"{expect.name} has {actual_size} bytes, {expect.size} were expected",
        )
        return VerifyReport(digest, False, "skipped", error=error)
    verified, error = await _check_hash(path, expect, digest)
    if error:
        return VerifyReport(digest, False, "skipped", error=error)
    verdict, detail, error = await _check_format(path, expect.name, pickle_timeout)
    return VerifyReport(digest, verified, verdict, detail, error)


async def _check_hash(
    path: Path, expect: Expectations, digest: str | None
) -> tuple[bool, CivitaiTuiError | None]:
    if expect.sha256 and digest is not None:
        if same_hash(digest, expect.sha256):
            return True, None
        return False, _mismatch(expect.name, "SHA256", expect.sha256, digest)
    if expect.blake3:
        actual = await blake3_file(path)
        if same_hash(actual, expect.blake3):
            return True, None
        return False, _mismatch(expect.name, "BLAKE3", expect.blake3, actual)
    return False, None


def _mismatch(name: str, algo: str, expected: str, actual: str) -> CivitaiTuiError:
    return CivitaiTuiError(
        FailureKind.HASH_MISMATCH,
        f"{name}: {algo} mismatch (expected {expected.lower()}, got {actual}); the file is "
        "damaged or not the one published",
    )


async def _check_format(
    path: Path, name: str, pickle_timeout: float
) -> tuple[str, str, CivitaiTuiError | None]:
    ext = Path(name).suffix.lower()
    if ext == ".safetensors":
        try:
            await asyncio.to_thread(check_safetensors, path)
        except CivitaiTuiError as exc:
            return "error", exc.message, exc
        return "clean", "safetensors header valid", None
    if ext == ".gguf":
        with open(path, "rb") as fh:
            if fh.read(4) == b"GGUF":
                return "clean", "GGUF magic present", None
        return "error", "no GGUF magic", _wrong_magic(name, "GGUF")
    if is_pickle_name(name) or await asyncio.to_thread(_holds_pickle, path):
        return await _scan(path, name, pickle_timeout)
    return "skipped", f"no format check for {ext or 'files without an extension'}", None


def _holds_pickle(path: Path) -> bool:
    """Whether a file of another type is a container or a pickle all the same."""
    with open(path, "rb") as fh:
        if is_container_head(fh.read(8)):
            return True
        fh.seek(0)
        return looks_like_pickle(fh)


async def _scan(path: Path, name: str, timeout: float) -> tuple[str, str, CivitaiTuiError | None]:
    report = await scan_pickle(path, timeout, name)
    if report.clean:
        return "clean", report.describe(), None
    verdict = "dangerous" if report.issues else "error"
    return verdict, report.describe(), unsafe(path.with_name(name), report)


def _wrong_magic(name: str, wanted: str) -> CivitaiTuiError:
    return CivitaiTuiError(
        FailureKind.INVALID_FORMAT,
        f"{name} does not start like {wanted} file although its extension says so "
        "(a renamed or damaged file)",
    )
