"""What the downloader is asked to fetch, and where its bytes come from.

A :class:`DownloadRequest` is a saveable value: *what* to fetch (the file's
facts, a :data:`Source`, where it goes, how to verify it), never how far along
it is. Its source is data too: a :class:`CivitAISourceRef` (version and file id)
or a :class:`DirectSource` (a URL). The downloader is given a :data:`Resolver`
that turns a source into a :class:`ResolvedURL`: the API client resolves a
CivitAI reference (with the token, on the API origin), so the downloader never
holds the token; a direct source resolves to itself.

``to_record`` / ``from_record`` are the one JSON form of a request (``state.db``
keeps it in one column): a new attribute of :class:`DownloadRequest` is saved,
loaded and shown to the downloader without any other edit.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import FileInfo
from civitai_tui.security.redact import MASK, mask_target, mask_url

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


@dataclass(frozen=True)
class CivitAISourceRef:
    """A CivitAI file by model version id and file id; the API client resolves it
    (one counted hit on ``/api/download`` yields a fresh signed storage URL)."""

    version_id: int
    file_id: int | None = None

    def describe(self) -> str:
        """Where it is asked for, for logs and errors."""
        suffix = f"?fileId={self.file_id}" if self.file_id else ""
        return f"civitai /api/download/models/{self.version_id}{suffix}"

    def to_record(self) -> dict[str, Any]:
        return {"kind": "civitai", "version_id": self.version_id, "file_id": self.file_id}


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
        """The URL without its secrets, for logs and errors."""
        return mask_url(self.url)

    def to_record(self) -> dict[str, Any]:
        return {"kind": "url", "url": mask_target(self.url)}


#: Where a file's bytes come from: saveable data, resolved by a :data:`Resolver`.
Source = CivitAISourceRef | DirectSource
#: Gives the downloader a (fresh) URL for a source: called once, and again when the
#: last URL expired or was refused (the API client's ``resolve_source``).
Resolver = Callable[[Source], Awaitable[ResolvedURL]]


async def resolve_direct(source: Source) -> ResolvedURL:
    """The resolver without an API client: a direct URL only."""
    if isinstance(source, DirectSource):
        return await source.resolve()
    raise CivitaiTuiError(
        FailureKind.BAD_TARGET,
        f"{source.describe()}: a CivitAI file is resolved by the API client, and this "
        "downloader was started without one",
    )


def source_from_record(record: dict[str, Any]) -> Source:
    """The source a :meth:`to_record` dict describes."""
    if record.get("kind") == "civitai":
        return CivitAISourceRef(int(record["version_id"]), record.get("file_id"))
    return DirectSource(str(record["url"]))


@dataclass
class DownloadRequest:
    """One file to download into ``dest_dir``, with what we know to verify it."""

    info: FileInfo
    source: Source
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

    def to_record(self) -> dict[str, Any]:
        """This request as JSON-ready data (secrets in a direct URL masked)."""
        return {f.name: _CODECS.get(f.name, _AS_IS)[0](getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DownloadRequest:
        """The request a :meth:`to_record` dict describes (missing attributes: defaults)."""
        return cls(
            **{
                name: _CODECS.get(name, _AS_IS)[1](value)
                for name, value in record.items()
                if name in cls.__dataclass_fields__
            }
        )


def _same(value: Any) -> Any:
    return value


_AS_IS = (_same, _same)
#: The attributes JSON cannot hold as they are: (to JSON, from JSON).
_CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "info": (
        lambda info: {f.name: getattr(info, f.name) for f in fields(info)},
        lambda data: FileInfo(**data),
    ),
    "source": (lambda source: source.to_record(), source_from_record),
    "dest_dir": (str, Path),
    "remote_scans": (list, tuple),
}
