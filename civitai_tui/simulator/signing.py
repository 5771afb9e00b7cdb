"""Signed storage URLs: an HMAC over the file id and the expiry time.

Stands in for the pre-signed S3/R2 URLs the real ``/api/download`` redirects to:
``/files/<fileId>/<quoted name>?expires=<unix>&sig=<hex>``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import quote


@dataclass(frozen=True)
class UrlSigner:
    storage_url: str
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def signature(self, file_id: int, expires: int) -> str:
        message = f"{file_id}:{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def url(self, file_id: int, name: str, ttl: float) -> str:
        """A URL for ``file_id`` valid for ``ttl`` seconds from now."""
        expires = int(time.time() + ttl)
        path = f"/files/{file_id}/{quote(name, safe='')}"
        return f"{self.storage_url}{path}?expires={expires}&sig={self.signature(file_id, expires)}"

    def valid_signature(self, file_id: int, expires: int, sig: str) -> bool:
        return hmac.compare_digest(self.signature(file_id, expires), sig)
