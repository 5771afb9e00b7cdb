"""What the downloader is asked to fetch, and where its bytes come from.

The API client builds :class:`DownloadRequest` objects; the downloader only sees a
:class:`UrlSource`, so it never holds the API token: a CivitAI source resolves
``/api/download`` (with the token, on the API origin) into a signed storage URL,
a direct source just returns its URL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import FileInfo
from civitai_tui.security.redact import MASK, mask_url

#: A signed link counts as expired this long before its stated expiry (storage clocks
#: run ahead of ours), or a tenth of its lifetime when that is shorter (short-lived links).
LINK_MARGIN = 300.0


@dataclass(frozen=True)
class ResolvedURL:
    """A URL whose body is the file, with its expiry and the server's file name."""

    url: str
    expires_at: float | None = None  # unix time; None = never expires
    filename: str | None = None
    #: When we got it (unix time): how long it lives decides the safety margin.
    resolved_at: float = field(default_factory=time.time, compare=False)

    def expired(self, margin: float | None = None) -> bool:
        """True when the URL expires within ``margin`` seconds (default: the safety margin)."""
        if self.expires_at is None:
            return False
        if margin is None:
            margin = min(LINK_MARGIN, max(0.0, self.expires_at - self.resolved_at) / 10)
        return time.time() + margin >= self.expires_at

    def __repr__(self) -> str:  # signed URLs carry signatures: never print them raw
        return f"ResolvedURL({mask_url(self.url)!r}, expires_at={self.expires_at})"


class UrlSource(Protocol):
    """Gives the downloader a (fresh) URL for the file's bytes."""

    async def resolve(self) -> ResolvedURL:
        """A URL to fetch; called once, and again when the last one expired or was refused."""
        ...

    def describe(self) -> str:
        """A masked, human-readable description for logs and errors."""
        ...


@dataclass(frozen=True)
class DirectSource:
    """A plain http(s) file URL: it resolves to itself and never expires.

    Its secret query values (``?token=``, signatures) are never stored: one read
    back from ``state.db`` after a restart has them masked and cannot be fetched.
    """

    url: str

    async def resolve(self) -> ResolvedURL:
        if f"={MASK}" in self.url:
            raise CivitaiTuiError(
                FailureKind.BAD_TARGET,
                f"{self.describe()}: its secret query values are never stored, and the "
                "engine restarted before it was fetched; add the job again with the full URL",
            )
        return ResolvedURL(self.url)

    def describe(self) -> str:
        return mask_url(self.url)


@dataclass
class DownloadRequest:
    """One file to download into ``dest_dir``, with what we know to verify it."""

    info: FileInfo
    source: UrlSource
    dest_dir: Path
    #: The final file name; None means "from Content-Disposition or the URL".
    filename: str | None = None
    expected_size: int | None = None
    sha256: str | None = None  # uppercase or lowercase hex
    blake3: str | None = None
    #: CivitAI's own scan verdicts (pickleScanResult / virusScanResult).
    remote_scans: tuple[str, ...] = ()
    #: CivitAI's file format ("SafeTensor", "PickleTensor", "GGUF", ...), if known.
    file_format: str | None = None
    #: The version's preview image (the first at or below the chosen NSFW level).
    preview_url: str | None = None
