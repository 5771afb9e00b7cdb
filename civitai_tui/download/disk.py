"""The disk side of a download: free space, preallocation, positional writes, atomic moves.

The ``.part`` file lives next to the final path (same directory, so the final
``os.replace`` is atomic). Space is checked before the first byte and reserved
with ``posix_fallocate`` (falling back to ``ftruncate`` where unsupported);
writes use ``os.pwrite`` at offsets with no per-chunk fsync; data and directory
are fsynced at checkpoints and at the end. Out-of-space errors become
``DISK_FULL`` and keep the partial data for a resume.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from civitai_tui.errors import CivitaiTuiError, FailureKind

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def disk_full(where: Path, needed: int | None = None) -> CivitaiTuiError:
    need = f" {_mib(needed)} more are needed" if needed is not None else ""
    return CivitaiTuiError(
        FailureKind.DISK_FULL,
        f"not enough disk space in {where}:{need}; free some space (the partial download is "
        "kept and will resume)",
    )


def check_free_space(directory: Path, needed: int, margin: int) -> None:
    """Raise ``DISK_FULL`` unless ``needed + margin`` bytes are free in ``directory``."""
    free = shutil.disk_usage(directory).free
    if needed + margin > free:
        raise disk_full(directory, needed + margin - free)


def open_part(path: Path) -> int:
    """Open (or create) the ``.part`` file for positional writes; mode 0644."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise filesystem_error(path, exc) from exc


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
