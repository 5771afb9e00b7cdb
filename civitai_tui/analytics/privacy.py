"""What analytics may store: secrets masked, user names pseudonymised.

Every string that reaches ``analytics.db`` or a report passes through
:class:`Scrubber`: URLs through ``mask_url`` (query signatures, tokens and
``user:pass@`` removed), other text through ``mask_text`` (tokens, keys,
``Authorization`` values, registered secrets). When ``anonymize_users`` is on,
user names become ``u_<16 hex>``: a keyed HMAC-SHA256 whose per-install key
lives in ``<state_dir>/analytics.key`` (mode 0600), never in the database, so
deleting the key un-links all history.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security.redact import mask_text, mask_url

KEY_NAME = "analytics.key"
_KEY_BYTES = 32
_CACHE_LIMIT = 4096
_URL_PREFIXES = ("http://", "https://")


def load_install_key(state_dir: Path) -> bytes:
    """The per-install HMAC key, created (0600) on first use."""
    path = state_dir / KEY_NAME
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        return _create_key(path)
    if len(key) != _KEY_BYTES:
        raise CivitaiTuiError(
            FailureKind.FILESYSTEM,
            f"{path} is damaged ({len(key)} bytes, expected {_KEY_BYTES}); delete it to "
            "start new pseudonyms (old ones will no longer match)",
        )
    return key


def _create_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(_KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class Scrubber:
    """Masks secrets in strings and pseudonymises user names (results cached)."""

    def __init__(self, install_key: bytes | None) -> None:
        """``install_key=None`` keeps user names (after masking) instead of pseudonyms."""
        self._key = install_key
        self._cache: dict[str, str] = {}
        self._users: dict[str, str] = {}

    def text(self, value: str) -> str:
        """``value`` with every secret masked."""
        if not value:
            return value
        cached = self._cache.get(value)
        if cached is None:
            cached = self._remember(value, _mask(value))
        return cached

    def _remember(self, raw: str, masked: str) -> str:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[raw] = masked
        return masked

    def pair(self, first: str, second: str) -> tuple[str, str]:
        """Two strings masked with one ``mask_text`` pass (newlines stop every pattern)."""
        if not (first and second) or "\n" in first + second or first.startswith(_URL_PREFIXES):
            return self.text(first), self.text(second)
        masked_first, masked_second = mask_text(f"{first}\n{second}").split("\n")
        return masked_first, masked_second

    def user(self, value: str) -> str:
        """A stable pseudonym for a user name or id (or the masked name)."""
        if not value or self._key is None:
            return self.text(value)
        pseudonym = self._users.get(value)
        if pseudonym is None:
            digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
            pseudonym = self._users[value] = "u_" + digest[:16]
        return pseudonym


def _mask(value: str) -> str:
    if value.startswith(_URL_PREFIXES):
        return mask_url(value)
    return mask_text(value)
