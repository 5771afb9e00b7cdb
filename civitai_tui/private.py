"""Files and folders only this user may read: databases, logs, engine output, quarantine.

A mode given to ``open``/``mkdir`` is cut by the umask and ignored for what
exists already, and SQLite creates its files 0644; so each helper creates the
entry and then sets the mode on its descriptor, never through a symbolic link
(another user could plant one in a shared folder to have us chmod their choice).
SQLite gives a database's ``-wal`` and ``-shm`` files the database's own mode.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from civitai_tui.errors import CivitaiTuiError, FailureKind

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """``path`` as a folder (created with its parents if missing) with mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, DIR_MODE)
    finally:
        os.close(fd)
    return path


def private_file(path: Path) -> Path:
    """``path`` as a regular file (created empty if missing) with mode 0600; a link is refused."""
    os.close(_open(path, os.O_RDWR))
    return path


def open_private_append(path: Path) -> BinaryIO:
    """``path`` (mode 0600) opened for appending, e.g. a child process's output."""
    return os.fdopen(_open(path, os.O_WRONLY | os.O_APPEND), "ab")


def read_secret_file(path: Path, what: str, howto: str) -> str:
    """The text in ``path`` (a secret: ``what`` names it in errors), refused unless the file is
    a regular file only its owner can read; ``howto`` says how to fix a refusal."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise _bad(f"cannot read the {what} {path} ({exc.strerror}); {howto}") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _bad(f"the {what} {path} is not a regular file")
        if info.st_mode & 0o077:
            raise _bad(
                f"the {what} {path} can be read by other users "
                f"(mode {stat.S_IMODE(info.st_mode):o}); run `chmod 600 {path}`"
            )
        return fh.read(4096).decode("utf-8", errors="replace").strip()


def _bad(message: str) -> CivitaiTuiError:
    return CivitaiTuiError(FailureKind.BAD_CONFIG, message)


def _open(path: Path, flags: int) -> int:
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd
