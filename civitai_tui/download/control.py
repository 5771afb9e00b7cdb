"""The resume control file ``<name>.part.ctl`` beside the ``.part`` data.

It records what a restart needs to continue without re-fetching or re-resolving:
the total size, the validators (ETag / Last-Modified), the resolved signed URL and
its expiry (so a resume does not spend another ``/api/download`` hit), and the
finished byte spans. JSON, written atomically (exclusive temp file + fsync +
rename) with mode 0600 because the URL is signed; read only when it is a
regular file of ours, never through a link. A missing, foreign or corrupt file
reads as None: the caller starts from zero, never crashes.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from civitai_tui.atomic import remove_leftovers, write_atomic
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
    write_atomic(path, json.dumps(payload, separators=(",", ":")).encode(), mode=0o600)


def load_control(path: Path) -> ControlState | None:
    """The saved state, or None when absent or unreadable (logged, never raised)."""
    try:
        raw = json.loads(_read_own(path))
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


def _read_own(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file of ours (never through a link)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise ValueError("not a regular file of ours")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)


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
    remove_leftovers(path)
