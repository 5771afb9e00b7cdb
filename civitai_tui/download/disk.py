"""The disk side of a download: free space, preallocation, positional writes, atomic moves.

The ``.part`` file lives next to the final path (same directory, so the final
``os.replace`` is atomic). Space is checked before the first byte and reserved
with ``posix_fallocate`` (falling back to ``ftruncate`` where unsupported);
writes use ``os.pwrite`` at offsets with no per-chunk fsync; data and directory
are fsynced at checkpoints and at the end. Out-of-space errors become
``DISK_FULL`` and keep the partial data for a resume.

How much space a download leaves free is ``download.min_free_space``
(:class:`FreeSpaceRule`): by default min(1 GiB, 2 % of the volume), so a small
volume is not refused for a margin larger than itself. A refused file FAILS
(``DISK_FULL``, not retried on its own); ``retry`` after freeing space starts it
again, resuming from its partial data if it had any.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.units import human_bytes

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
_UNITS = {
    **{"": 1, "b": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB},
    **{"kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB},
    **{"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12},
}
FREE_SPACE_RULES = "auto, a size such as 512MiB, 2GB or 0, or a share of the volume such as 5%"


@dataclass(frozen=True)
class FreeSpaceRule:
    """What ``download.min_free_space`` keeps free on a download's volume: a size, a
    share of the volume, or neither (``auto``: min(1 GiB, 2 % of the volume))."""

    size: int | None = None
    percent: float | None = None

    def on(self, total: int) -> int:
        """The bytes to keep free on a volume of ``total`` bytes."""
        if self.size is not None:
            return self.size
        if self.percent is not None:
            return int(total * self.percent / 100)
        return min(GiB, total // 50)

    def __str__(self) -> str:
        if self.size is not None:
            return human_bytes(self.size)
        return f"{self.percent:g}%" if self.percent is not None else "auto"


def parse_free_space(text: str) -> FreeSpaceRule:
    """``auto``, a size (``512MiB``, ``2GB``, ``1073741824``) or ``N%`` (0-50); else ValueError."""
    raw = text.strip().lower().replace(" ", "")
    if raw == "auto":
        return FreeSpaceRule()
    if raw.endswith("%"):
        percent = float(raw[:-1])
        if not 0 <= percent <= 50:  # nan fails this too
            raise ValueError(text)
        return FreeSpaceRule(percent=percent)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-z]*)", raw)
    if match is None or match[2] not in _UNITS:
        raise ValueError(text)
    return FreeSpaceRule(size=int(float(match[1]) * _UNITS[match[2]]))


def disk_full(where: Path, needed: int | None = None) -> CivitaiTuiError:
    need = f" {human_bytes(needed)} more are needed" if needed is not None else ""
    return CivitaiTuiError(
        FailureKind.DISK_FULL,
        f"not enough disk space in {where}:{need}; the partial download is kept: free some "
        "space, then retry (it resumes where it stopped)",
    )


def free_bytes(dest: Path) -> int | None:
    """Free bytes on the disk that holds ``dest`` (its nearest existing folder)."""
    dest = dest.expanduser().resolve()
    for folder in (dest, *dest.parents):
        if folder.exists():
            return shutil.disk_usage(folder).free
    return None


def check_free_space(
    directory: Path, needed: int, rule: FreeSpaceRule, what: str, *, partial: bool = False
) -> None:
    """Raise ``DISK_FULL`` (saying what, how much is free and needed, and what to do)
    unless ``needed`` bytes fit in ``directory`` with ``rule``'s free space left over."""
    usage = shutil.disk_usage(directory)
    keep = rule.on(usage.total)
    if needed + keep <= usage.free:
        return
    kept = " (its partial download is kept)" if partial else ""
    raise CivitaiTuiError(
        FailureKind.DISK_FULL,
        f"refused {what}{kept}: it needs {human_bytes(needed)} more in {directory} and "
        f"download.min_free_space ({rule}) keeps {human_bytes(keep)} free there, but only "
        f"{human_bytes(usage.free)} are free ({human_bytes(needed + keep - usage.free)} more "
        "are needed); free some space or lower download.min_free_space, then retry",
    )


def open_part(path: Path, resume: bool = False) -> int:
    """Open the ``.part`` file for positional writes, never through a symbolic link.

    In a shared folder another user may plant a link (or a file) at our ``.part``
    to make us write into their choice. To ``resume``, the ``.part`` must be a
    regular file of ours with one link; otherwise whatever is there is removed and
    the file is created exclusively (``O_EXCL``), mode 0644.
    """
    try:
        if resume:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
            _check_ours(fd, path)
            return fd
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise not_ours(path, "a symbolic link") from exc
        if exc.errno == errno.EEXIST:
            raise not_ours(path, "a file that appeared while it was being created") from exc
        raise filesystem_error(path, exc) from exc


def _check_ours(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    what = None
    if not stat.S_ISREG(st.st_mode):
        what = "not a regular file"
    elif st.st_uid != os.geteuid():
        what = "a file of another user"
    elif st.st_nlink != 1:
        what = "a file with other hard links"
    if what is not None:
        os.close(fd)
        raise not_ours(path, what)


def not_ours(path: Path, what: str) -> CivitaiTuiError:
    return CivitaiTuiError(
        FailureKind.FILESYSTEM,
        f"{path} is {what}, not a partial download of ours: nothing was written through it "
        "(in a shared folder someone may have planted it); remove it and retry",
    )


def preallocate(fd: int, size: int, where: Path) -> None:
    """Reserve ``size`` bytes for ``fd`` (fallocate, else a sparse truncate)."""
    if size == 0:
        os.ftruncate(fd, 0)
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            raise disk_full(where, size) from exc
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise filesystem_error(where, exc) from exc
    if os.fstat(fd).st_size != size:
        os.ftruncate(fd, size)


def pwrite_all(fd: int, data: memoryview, offset: int, where: Path) -> None:
    """Write all of ``data`` at ``offset``; out-of-space → ``DISK_FULL``."""
    try:
        while data:
            written = os.pwrite(fd, data, offset)
            data = data[written:]
            offset += written
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            raise disk_full(where) from exc
        raise filesystem_error(where, exc) from exc


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_into_place(part: Path, final: Path) -> None:
    """Atomically rename the finished ``part`` to ``final`` and make it durable.

    A failure (something in the way, a read-only or immutable folder) is a
    ``FILESYSTEM`` error; the verified ``.part`` stays for a retry.
    """
    try:
        os.replace(part, final)
        fsync_dir(final.parent)
    except OSError as exc:
        raise CivitaiTuiError(
            FailureKind.FILESYSTEM,
            f"cannot move the finished download to {final}: {exc.strerror or exc}; clear the way "
            "(or make the folder writable), then `civitai-tui retry` the job",
        ) from exc


def filesystem_error(where: Path, exc: OSError) -> CivitaiTuiError:
    return CivitaiTuiError(
        FailureKind.FILESYSTEM, f"cannot write {where}: {exc.strerror or exc}; check the folder"
    )


_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's ``sync_file_range`` (not in :mod:`os`), or None where there is none."""
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func  # type: ignore[no-any-return]


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``[offset, offset + length)`` to disk without waiting (advisory:
    durability still comes from the fsync before the rename)."""
    func = _sync_file_range()
    if func is not None:
        func(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
