"""The resume control file ``<name>.part.ctl`` beside the ``.part`` data.

It records what a restart needs to continue without re-fetching or re-resolving:
the total size, the validators (ETag / Last-Modified), the resolved signed URL and
its expiry (so a resume does not spend another ``/api/download`` hit), and the
finished byte spans. JSON, written atomically (temp file + fsync + rename) with
mode 0600 because the URL is signed. A missing or corrupt file reads as None:
the caller starts from zero, never crashes.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from civitai_tui.download.ranges import merge_spans

log = logging.getLogger(__name__)

VERSION = 1


@dataclass
class ControlState:
    """What is known about a partial download."""

    size: int
    etag: str | None = None
    last_modified: str | None = None
    url: str | None = field(default=None, repr=False)
    url_expires_at: float | None = None
    done: list[tuple[int, int]] = field(default_factory=list)

    @property
    def done_bytes(self) -> int:
        return sum(end - start for start, end in self.done)


def control_path(part: Path) -> Path:
    return part.with_name(part.name + ".ctl")


def save_control(path: Path, state: ControlState) -> None:
    """Write ``state`` to ``path`` atomically (mode 0600)."""
    payload = {"version": VERSION, **asdict(state)}
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(payload, separators=(",", ":")).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_control(path: Path) -> ControlState | None:
    """The saved state, or None when absent or unreadable (logged, never raised)."""
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        log.warning("ignoring unreadable control file %s (%s): starting from zero", path, exc)
        return None
    try:
        return _parse(raw)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring corrupt control file %s (%s): starting from zero", path, exc)
        return None


def _parse(raw: dict) -> ControlState:
    if raw.get("version") != VERSION:
        raise ValueError(f"unknown version {raw.get('version')!r}")
    size = raw["size"]
    if not isinstance(size, int) or size < 0:
        raise ValueError("bad size")
    done = [(int(a), int(b)) for a, b in raw["done"]]
    if any(not 0 <= a < b <= size for a, b in done):
        raise ValueError("span outside the file")
    expires = raw.get("url_expires_at")
    return ControlState(
        size=size,
        etag=_opt_str(raw.get("etag")),
        last_modified=_opt_str(raw.get("last_modified")),
        url=_opt_str(raw.get("url")),
        url_expires_at=float(expires) if expires is not None else None,
        done=merge_spans(done),
    )


def _opt_str(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError("expected a string")


def remove_control(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".tmp").unlink(missing_ok=True)
