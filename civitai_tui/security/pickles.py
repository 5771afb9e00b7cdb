"""Pickle scanning of ``.ckpt/.pt/.pth/.bin`` files with picklescan in strict mode.

The scan runs in a separate Python process with a timeout: a legacy raw-pickle
checkpoint can need memory close to its size, and a hostile file must not be
able to hang or bloat the engine. Any issue, or any scan error, is a failure;
the dangerous globals (``module.name``) are reported. Nothing is ever unpickled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from civitai_tui.errors import CivitaiTuiError, FailureKind


@dataclass(frozen=True)
class PickleScanReport:
    """The verdict of one scan; ``clean`` only when no issue and no error."""

    issues: int
    dangerous: tuple[str, ...] = ()
    error: str | None = None
    globals_seen: tuple[str, ...] = field(default=(), repr=False)

    @property
    def clean(self) -> bool:
        return self.issues == 0 and self.error is None

    def describe(self) -> str:
        if self.error:
            return f"the pickle scan failed: {self.error}"
        if self.dangerous:
            return f"dangerous pickle globals: {', '.join(self.dangerous)}"
        if self.issues:
            return f"the pickle scan found {self.issues} issue(s)"
        return "no dangerous pickle globals"


def _scan(path: str) -> dict:
    """Run picklescan (in the child process) and return a JSON-ready dict."""
    from picklescan.scanner import SafetyLevel, scan_file_path

    result = scan_file_path(path, strict=True)
    return {
        "issues": result.issues_count,
        "error": "could not parse the file" if result.scan_err else None,
        "dangerous": [
            f"{g.module}.{g.name}" for g in result.globals if g.safety == SafetyLevel.Dangerous
        ],
        "globals": [f"{g.module}.{g.name}" for g in result.globals],
    }


async def scan_pickle(path: Path, timeout: float = 120.0) -> PickleScanReport:
    """Scan ``path`` in a child process; a timeout or crash is a failed scan."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        __name__,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
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
    return PickleScanReport(
        issues=int(data["issues"]),
        dangerous=tuple(data["dangerous"]),
        error=data["error"],
        globals_seen=tuple(data["globals"]),
    )


def unsafe(path: Path, report: PickleScanReport) -> CivitaiTuiError:
    return CivitaiTuiError(
        FailureKind.UNSAFE,
        f"{path.name} was refused: {report.describe()}. It was not loaded; it is in quarantine",
    )


if __name__ == "__main__":
    json.dump(_scan(sys.argv[1]), sys.stdout)
