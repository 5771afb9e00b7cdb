"""Placing a verified copy the library already has at the path a job asked for.

When the library index knows a file with the wanted SHA256 somewhere else (another
folder, another job's destination), the job still needs the file *at its own
path*. ``bulk.dedupe`` says how: ``link`` (the default) makes a hard link when
both paths are on one file system, else a reflink (``FICLONE``: a copy-on-write
clone on Btrfs, XFS, bcachefs), else a plain copy; ``copy`` never shares the
inode (reflink, else copy); ``download`` fetches it again. Whatever the method,
the placed bytes are hashed before they take the final name: a source that
changed or vanished (an unmounted disk) raises, and the caller downloads instead.
The work happens under a temporary name in the destination folder and ends with
an atomic rename, so nothing half-made ever sits at the final path.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import Literal

from civitai_tui.download.disk import fsync_dir
from civitai_tui.security.hashing import same_hash, sha256_file_sync

DEDUPE_MODES = ("link", "copy", "download")
Method = Literal["hardlink", "reflink", "copy"]

#: ``_IOW(0x94, 9, int)`` from linux/fs.h: clone a whole file (copy-on-write).
FICLONE = 0x40049409


class SourceChanged(OSError):
    """The copy the index pointed at no longer has the wanted content."""


def temp_path(final: Path) -> Path:
    return final.with_name(final.name + ".placing")


def place_copy(source: Path, final: Path, sha256: str, mode: str) -> Method:
    """Put ``source``'s bytes at ``final`` (blocking: run it in a thread); returns how.

    Raises ``OSError`` (``SourceChanged`` when the bytes are not the wanted ones)
    and leaves nothing behind when it cannot.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final)
    tmp.unlink(missing_ok=True)
    try:
        method = _make(source, tmp, mode)
        digest = sha256_file_sync(tmp)
        if not same_hash(digest, sha256):
            raise SourceChanged(f"{source} no longer has SHA256 {sha256.lower()} (got {digest})")
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return method


def _make(source: Path, tmp: Path, mode: str) -> Method:
    method: Method
    if mode == "link":
        try:
            os.link(source, tmp)
            return "hardlink"
        except FileNotFoundError:
            raise
        except OSError:  # another file system, or links not allowed: clone or copy
            pass
    if _reflink(source, tmp):
        method = "reflink"
    else:
        shutil.copyfile(source, tmp)  # sendfile / copy_file_range in the kernel
        method = "copy"
    shutil.copystat(source, tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return method


def _reflink(source: Path, tmp: Path) -> bool:
    """Clone ``source`` into a new ``tmp`` (False where the file system cannot)."""
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError:
            return False
    return True
