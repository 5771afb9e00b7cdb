"""Quarantine: where a file that failed verification goes, never the model folder.

A refused file moves to ``<state_dir>/quarantine/<timestamp>-<name>`` with a
``.reason.json`` note beside it (reason, kind, expected and actual hashes, the
masked source), so the user can inspect or delete it and nothing loads it by
accident. The move is a rename when possible (same file system), else a copy.
The folder is 0700 and the file 0600, set on its descriptor: a symbolic link in
its place is left alone, never followed.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from civitai_tui.config import state_dir
from civitai_tui.private import private_dir, private_file
from civitai_tui.security.redact import mask_text

log = logging.getLogger(__name__)


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
    return private_dir((base or state_dir()) / "quarantine")


def quarantine(path: Path, note: QuarantineNote, base: Path | None = None) -> Path:
    """Move ``path`` into quarantine with its note; returns the new location."""
    target_dir = quarantine_dir(base)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 10**6:06d}"
    target = target_dir / f"{stamp}-{note.name}"
    shutil.move(path, target)
    try:
        private_file(target)
    except OSError as exc:  # ELOOP: a link was planted where our .part was
        log.warning(
            "quarantined %s is not a regular file (%s): its mode is left alone", target, exc
        )
    safe = QuarantineNote(
        **{**asdict(note), "reason": mask_text(note.reason), "source": mask_text(note.source)}
    )
    reason_path = target.with_name(target.name + ".reason.json")
    reason_path.write_text(
        json.dumps({**asdict(safe), "quarantined_at": time.time()}, indent=2), encoding="utf-8"
    )
    return target
