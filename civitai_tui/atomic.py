"""All-or-nothing file writes: a temporary file beside the target, then a rename.

The temporary file is created exclusively (``mkstemp``: ``O_EXCL``, never
through a link another user planted) in the target's folder, its mode is set on
the descriptor, and it is fsynced before the rename.
"""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """``data`` at ``path`` or, on any error, nothing new (``OSError`` is raised)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_leftovers(path: Path) -> None:
    """Delete the temporary files an interrupted :func:`write_atomic` of ``path`` left."""
    for tmp in glob.glob(glob.escape(str(path.parent / f".{path.name}.")) + "*.tmp"):
        Path(tmp).unlink(missing_ok=True)
