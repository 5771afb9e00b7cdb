"""Quarantine: where a file that failed verification goes, never the model folder.

A refused file moves to ``<state_dir>/quarantine/<timestamp>-<name>`` with a
``.reason.json`` note beside it (reason, kind, expected and actual hashes, the
masked source), so the user can inspect or delete it and nothing loads it by
accident. The move is a rename when possible (same file system), else a copy.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from civitai_tui.config import state_dir
from civitai_tui.security.redact import mask_text


@dataclass(frozen=True)
class QuarantineNote:
    """Why a file was quarantined (stored next to it as JSON)."""

    reason: str
    kind: str
    name: str
    source: str = ""
    expected_sha256: str | None = None
    actual_sha256: str | None = None
    size: int | None = None


def quarantine_dir(base: Path | None = None) -> Path:
    path = (base or state_dir()) / "quarantine"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def quarantine(path: Path, note: QuarantineNote, base: Path | None = None) -> Path:
    """Move ``path`` into quarantine with its note; returns the new location."""
    target_dir = quarantine_dir(base)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 10**6:06d}"
    target = target_dir / f"{stamp}-{note.name}"
    shutil.move(path, target)
    os.chmod(target, 0o600)
    safe = QuarantineNote(
        **{**asdict(note), "reason": mask_text(note.reason), "source": mask_text(note.source)}
    )
    reason_path = target.with_name(target.name + ".reason.json")
    reason_path.write_text(
        json.dumps({**asdict(safe), "quarantined_at": time.time()}, indent=2), encoding="utf-8"
    )
    return target
