"""The CivitAI API token: ``<state dir>/credentials`` (mode 0600), and the engine's keeper.

``civitai-tui login`` stores the token there and nowhere else; ``logout``
removes it. The engine's :class:`TokenKeeper` answers "which token now?" on every
API call: its own environment's ``CIVITAI_API_KEY`` first, else the credentials
file (re-read whenever it changes, so a ``login`` or ``logout`` applies at once),
else a token a client handed over on the Unix socket (kept in memory only).
"""

from __future__ import annotations

import os
from pathlib import Path

from civitai_tui.atomic import write_atomic
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security.redact import register_secret

FILE_NAME = "credentials"
MAX_TOKEN_LENGTH = 512

#: Where the engine's token came from (``engine status``).
FROM_ENVIRONMENT, FROM_FILE, FROM_CLIENT = "environment", "credentials file", "handed over"


def credentials_path(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


def check_token(token: str) -> str:
    """``token`` stripped, or a BAD_CONFIG error saying what is wrong with it."""
    token = token.strip()
    if not token:
        raise CivitaiTuiError(FailureKind.BAD_CONFIG, "no token given")
    if len(token) > MAX_TOKEN_LENGTH or any(c.isspace() or not c.isprintable() for c in token):
        raise CivitaiTuiError(
            FailureKind.BAD_CONFIG,
            "that does not look like a CivitAI API token (one word of printable characters)",
        )
    return token


def save_token(state_dir: Path, token: str) -> Path:
    """Store ``token`` in the credentials file (atomically, mode 0600)."""
    path = credentials_path(state_dir)
    write_atomic(path, (check_token(token) + "\n").encode(), mode=0o600)
    return path


def remove_token(state_dir: Path) -> bool:
    """Delete the credentials file; whether there was one."""
    try:
        credentials_path(state_dir).unlink()
    except FileNotFoundError:
        return False
    return True


def load_token(state_dir: Path) -> str | None:
    """The stored token, or None when there is none (or it is unreadable / malformed)."""
    try:
        raw = credentials_path(state_dir).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    try:
        token = check_token(raw)
    except CivitaiTuiError:
        return None
    register_secret(token)
    return token


class TokenKeeper:
    """The engine's current API token; call it for the token (None: no token)."""

    def __init__(self, state_dir: Path, env_token: str | None) -> None:
        self._state_dir = state_dir
        self._env = env_token or None
        register_secret(self._env)
        self._handed: str | None = None
        self._seen: tuple[int, int, int] | None = None
        self._stored: str | None = None

    def __call__(self) -> str | None:
        return self.current()[0]

    def current(self) -> tuple[str | None, str | None]:
        """The token and where it came from (both None when there is none)."""
        if self._env:
            return self._env, FROM_ENVIRONMENT
        stored = self._read_file()
        if stored:
            return stored, FROM_FILE
        if self._handed:
            return self._handed, FROM_CLIENT
        return None, None

    def hand_over(self, token: str) -> None:
        """Keep ``token`` (from a client on the Unix socket) in memory, used when no other."""
        self._handed = check_token(token)
        register_secret(self._handed)

    def forget_handed(self) -> None:
        self._handed = None

    def _read_file(self) -> str | None:
        """The credentials file's token, read again only when the file changed."""
        try:
            st = os.stat(credentials_path(self._state_dir))
        except OSError:
            self._seen = self._stored = None
            return None
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen != self._seen:
            self._seen, self._stored = seen, load_token(self._state_dir)
        return self._stored
