"""The :class:`UrlSource` for a CivitAI file: resolves ``/api/download`` via the client.

The downloader holds only this object, never the token: each ``resolve()`` is
one counted hit on ``/api/download`` that yields a fresh signed storage URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from civitai_tui.download.request import ResolvedURL

if TYPE_CHECKING:
    from civitai_tui.civitai.client import CivitAIClient


@dataclass(frozen=True)
class CivitAIDownloadSource:
    """A CivitAI file addressed by version id and file id."""

    client: CivitAIClient = field(repr=False, compare=False)
    version_id: int
    file_id: int | None = None

    async def resolve(self) -> ResolvedURL:
        return await self.client.resolve_download(self.version_id, self.file_id)

    def describe(self) -> str:
        suffix = f"?fileId={self.file_id}" if self.file_id else ""
        return f"civitai /api/download/models/{self.version_id}{suffix}"
