"""The name under which engines share one CivitAI key's limits, never the key itself.

Engines that use the same API token must share its pacing (CivitAI limits the
key, not the machine), yet the token must never reach the server. The limit is
therefore keyed by ``HMAC-SHA256(fleet salt, token)``: the salt is 32 random
bytes the first engine stores on the server (``SET NX``), so every engine with
the same token derives the same name, and a reader of the server learns nothing
usable (a 128-bit key is not guessed from its HMAC). Callers without a token
share one name, ``anonymous`` (CivitAI limits those by address anyway).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

from redis.asyncio import Redis

from civitai_tui.fleet.link import LimitsLink

SALT_KEY = "ctf:limits:salt"
ANONYMOUS = "anonymous"


def key_id(salt: bytes, token: str | None) -> str:
    """The limit name of ``token`` under ``salt`` (``anonymous`` without a token)."""
    if not token:
        return ANONYMOUS
    return hmac.new(salt, token.encode(), hashlib.sha256).hexdigest()[:32]


class KeyIds:
    """The current token's limit name; the salt is fetched (or created) once."""

    def __init__(self, redis: Redis, link: LimitsLink, token: Callable[[], str | None]) -> None:
        self._redis = redis
        self._link = link
        self._token = token
        self._salt: bytes | None = None
        self._cached: tuple[str | None, str] | None = None

    async def current(self) -> str | None:
        """The name for the token in use now; None while the salt cannot be had."""
        if self._salt is None:
            self._salt = await self._link.call(self._fetch_salt)
            if self._salt is None:
                return None
        token = self._token() or None
        if self._cached is None or self._cached[0] != token:
            self._cached = (token, key_id(self._salt, token))
        return self._cached[1]

    async def _fetch_salt(self) -> bytes:
        await self._redis.set(SALT_KEY, secrets.token_hex(32), nx=True)
        salt = await self._redis.get(SALT_KEY)
        if not salt:
            raise RuntimeError(f"the fleet server lost {SALT_KEY} right after setting it")
        return bytes.fromhex(salt.decode() if isinstance(salt, bytes) else salt)
