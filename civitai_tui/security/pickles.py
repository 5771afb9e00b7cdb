"""Pickle scanning (see :mod:`~civitai_tui.security.pickle_child`) off the event loop.

Scanning needs memory close to the size of the pickle data (not of the tensor
data), so a file with large pickle data (a legacy raw-pickle checkpoint, any
large ``.bin``) is scanned in a separate Python process with a timeout: a hostile
file must not be able to hang or bloat the engine. Small pickle data, such as a
zip checkpoint's ``data.pkl``, is scanned in a worker thread, which saves a
process start per file. Any issue, any scan error and any stream that cannot be
parsed is a failure; the dangerous globals (``module.name``) are reported.
Nothing is ever unpickled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security import pickle_child


@dataclass(frozen=True)
class PickleScanReport:
    """The verdict of one scan; ``clean`` only when no issue and no error."""

    issues: int
    dangerous: tuple[str, ...] = ()
    error: str | None = None
    globals_seen: tuple[str, ...] = field(default=(), repr=False)
    unparsed: str | None = None  # a stream that claims to be a pickle but does not parse

    @property
    def clean(self) -> bool:
        return self.issues == 0 and self.error is None and self.unparsed is None

    def describe(self) -> str:
        if self.dangerous:
            return f"dangerous pickle globals: {', '.join(self.dangerous)}"
        if self.error:
            return f"the pickle scan failed: {self.error}"
        if self.unparsed:
            return f"it cannot be checked for pickled code: {self.unparsed}"
        if self.issues:
            return f"the pickle scan found {self.issues} issue(s)"
        return "no dangerous pickle globals"


#: Pickle data up to this size is scanned in-process.
IN_PROCESS_LIMIT = 64 * 1024 * 1024
ZIP_MAGIC = pickle_child.ZIP_MAGIC


def pickle_data_size(path: Path) -> int:
    """How many bytes of pickle data the scan may have to parse in ``path``."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as zf:
                return sum(
                    i.file_size
                    for i in zf.infolist()
                    if pickle_child.is_pickle_name(i.filename) or i.filename.endswith(".zip")
                )
        except (zipfile.BadZipFile, OSError):
            return path.stat().st_size
    return path.stat().st_size


def _report(data: dict) -> PickleScanReport:
    return PickleScanReport(
        issues=int(data["issues"]),
        dangerous=tuple(data["dangerous"]),
        error=data["error"],
        globals_seen=tuple(data["globals"]),
        unparsed=data["unparsed"],
    )


async def scan_pickle(
    path: Path, timeout: float = 120.0, name: str | None = None
) -> PickleScanReport:
    """Scan ``path`` (named ``name``; in a child process when its pickle data is large)."""
    size = await asyncio.to_thread(pickle_data_size, path)
    if size > IN_PROCESS_LIMIT:
        return await _scan_in_child(path, timeout, name)
    try:
        async with asyncio.timeout(timeout):
            scanned = await asyncio.to_thread(pickle_child.scan, str(path), name)
        return _report(scanned)
    except TimeoutError:
        return PickleScanReport(issues=0, error=f"it took longer than {timeout:g} s")
    except Exception as exc:  # picklescan on hostile input: a failed scan, never a crash
        return PickleScanReport(issues=0, error=f"the scanner failed ({type(exc).__name__})")


async def _scan_in_child(path: Path, timeout: float, name: str | None) -> PickleScanReport:
    """Scan ``path`` in a child process; a timeout or crash is a failed scan."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        pickle_child.__name__,
        str(path),
        name or path.name,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        return PickleScanReport(issues=0, error=f"it took longer than {timeout:g} s")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    try:
        data = json.loads(out)
    except ValueError:
        return PickleScanReport(issues=0, error=f"the scanner exited with code {proc.returncode}")
    return _report(data)


def unsafe(path: Path, report: PickleScanReport) -> CivitaiTuiError:
    """The refusal of a file whose scan is not clean: unparsable data is an invalid format."""
    kind = FailureKind.UNSAFE if report.issues or report.error else FailureKind.INVALID_FORMAT
    return CivitaiTuiError(
        kind,
        f"{path.name} was refused: {report.describe()}. It was not loaded; it is in quarantine",
    )
