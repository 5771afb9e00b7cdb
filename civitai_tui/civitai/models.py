"""Frozen dataclasses for what the CivitAI REST API returns.

Parsing is tolerant: the real API drops null fields (``removeEmpty``), omits
``primary`` in listings, sends ``hashes: {}`` for fresh uploads and ``files: []``
for archived models. Missing values become ``None``/empty, never an exception;
only a missing ``id`` is an error (the caller reports it as an API error).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Json = Mapping[str, Any]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _size(size_kb: Any) -> int | None:
    """Bytes from ``sizeKB``; None for what no file can measure (inf, nan, negative, bool)."""
    if isinstance(size_kb, bool) or not isinstance(size_kb, int | float) or size_kb < 0:
        return None
    size = size_kb * 1024
    return round(size) if isinstance(size, int) or math.isfinite(size) else None


def _dict(value: Any) -> Json:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _required_id(data: Json, what: str) -> int:
    value = _int(data.get("id"))
    if value is None:
        raise ValueError(f"{what} without an integer id")
    return value


@dataclass(frozen=True)
class Creator:
    username: str
    image: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Creator:
        data = _dict(data)
        return cls(username=_str(data.get("username")), image=_opt_str(data.get("image")))


@dataclass(frozen=True)
class ModelFile:
    id: int
    name: str
    size: int | None  # bytes: round(sizeKB * 1024)
    type: str = ""
    primary: bool = False
    format: str | None = None
    fp: str | None = None
    size_variant: str | None = None  # metadata.size: "full" | "pruned"
    hashes: Mapping[str, str] = field(default_factory=dict)  # keys as given (SHA256, BLAKE3...)
    pickle_scan_result: str | None = None
    virus_scan_result: str | None = None
    download_url: str | None = None

    @classmethod
    def from_json(cls, data: Json) -> ModelFile:
        meta = _dict(data.get("metadata"))
        hashes = {k: v.upper() for k, v in _dict(data.get("hashes")).items() if isinstance(v, str)}
        return cls(
            id=_required_id(data, "file"),
            name=_str(data.get("name")),
            size=_size(data.get("sizeKB")),
            type=_str(data.get("type")),
            primary=data.get("primary") is True,
            format=_opt_str(meta.get("format")),
            fp=_opt_str(meta.get("fp")),
            size_variant=_opt_str(meta.get("size")),
            hashes=hashes,
            pickle_scan_result=_opt_str(data.get("pickleScanResult")),
            virus_scan_result=_opt_str(data.get("virusScanResult")),
            download_url=_opt_str(data.get("downloadUrl")),
        )

    def hash(self, kind: str) -> str | None:
        """The hash of ``kind`` (case-insensitive key, e.g. ``"sha256"``), or None."""
        kind = kind.lower()
        return next((v for k, v in self.hashes.items() if k.lower() == kind), None)

    def has_hash(self, value: str) -> bool:
        """True when any of the file's hashes equals ``value`` (case-insensitive)."""
        return value.upper() in self.hashes.values()


@dataclass(frozen=True)
class ModelVersion:
    id: int
    model_id: int | None
    name: str
    base_model: str = ""
    files: tuple[ModelFile, ...] = ()
    images: tuple[Json, ...] = ()
    early_access_ends_at: str | None = None
    download_url: str | None = None
    model_name: str = ""
    model_type: str = ""
    model_mode: str | None = None  # "Archived" | "TakenDown" | None
    trained_words: tuple[str, ...] = ()
    published_at: str | None = None

    @classmethod
    def from_json(cls, data: Json, model: Json | None = None) -> ModelVersion:
        """Parse a version; ``model`` fills the model fields for versions inside /models."""
        inner = _dict(data.get("model")) or _dict(model)
        return cls(
            id=_required_id(data, "model version"),
            model_id=_int(data.get("modelId")) or _int(_dict(model).get("id")),
            name=_str(data.get("name")),
            base_model=_str(data.get("baseModel")),
            files=tuple(ModelFile.from_json(f) for f in _list(data.get("files")) if _dict(f)),
            images=tuple(i for i in _list(data.get("images")) if isinstance(i, Mapping)),
            early_access_ends_at=_opt_str(data.get("earlyAccessEndsAt")),
            download_url=_opt_str(data.get("downloadUrl")),
            model_name=_str(inner.get("name")),
            model_type=_str(inner.get("type")),
            model_mode=_opt_str(inner.get("mode")),
            trained_words=tuple(w for w in _list(data.get("trainedWords")) if isinstance(w, str)),
            published_at=_opt_str(data.get("publishedAt")),
        )

    def primary_file(self) -> ModelFile | None:
        return next((f for f in self.files if f.primary), None)


@dataclass(frozen=True)
class Model:
    id: int
    name: str
    type: str = ""
    nsfw: bool = False
    mode: str | None = None
    creator: Creator = field(default_factory=lambda: Creator(""))
    tags: tuple[str, ...] = ()
    versions: tuple[ModelVersion, ...] = ()  # newest first, as the API sends them
    stats: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Json) -> Model:
        versions = tuple(
            ModelVersion.from_json(v, model=data)
            for v in _list(data.get("modelVersions"))
            if _dict(v)
        )
        return cls(
            id=_required_id(data, "model"),
            name=_str(data.get("name")),
            type=_str(data.get("type")),
            nsfw=data.get("nsfw") is True,
            mode=_opt_str(data.get("mode")),
            creator=Creator.from_json(data.get("creator")),
            tags=tuple(t for t in _list(data.get("tags")) if isinstance(t, str)),
            versions=versions,
            stats=dict(_dict(data.get("stats"))),
        )
