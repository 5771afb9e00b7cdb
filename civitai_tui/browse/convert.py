"""CivitAI's JSON (``/api/v1/models`` items and ``/api/v1/models/{id}``) as Browse records.

Tolerant like :mod:`civitai_tui.civitai.models` (missing or odd fields become
empty values, only a missing id is an error), and every outside string that
reaches the screen goes through :mod:`civitai_tui.browse.text` first.

``rating`` is the share of thumbs up among thumbs (0.0-1.0; None without votes):
CivitAI no longer sends a star rating for models. A preview is the first image
of the newest version whose NSFW level is at or below the cap (``browse.nsfw_level``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from civitai_tui.browse.records import (
    FileInfo,
    ImageRef,
    ModelDetail,
    ModelSummary,
    VersionInfo,
)
from civitai_tui.browse.text import description_text, line_text
from civitai_tui.civitai.models import Model, ModelFile, ModelVersion

#: The most images of one version the detail pane gets.
MAX_IMAGES = 12
#: The most trigger words of one version kept.
MAX_WORDS = 50


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def rating(stats: Mapping[str, Any]) -> float | None:
    """Thumbs up / all thumbs, or None when nobody voted."""
    up, down = _count(stats.get("thumbsUpCount")), _count(stats.get("thumbsDownCount"))
    return up / (up + down) if up + down else None


def image_ref(data: Mapping[str, Any]) -> ImageRef | None:
    """An image of the API, or None when it has no usable URL or is not an image."""
    url = data.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return None
    if data.get("type", "image") != "image":
        return None  # videos are not previewed
    level = data.get("nsfwLevel")
    return ImageRef(
        url=url,
        width=_count(data.get("width")),
        height=_count(data.get("height")),
        nsfw_level=level if type(level) is int else 32,  # unknown: treat as blocked
    )


def _images(version: ModelVersion, max_nsfw_level: int) -> tuple[ImageRef, ...]:
    found = (image_ref(i) for i in version.images)
    return tuple(i for i in found if i is not None and i.nsfw_level <= max_nsfw_level)


def summary(model: Model, max_nsfw_level: int) -> ModelSummary:
    """One result row of ``model`` (a parsed ``/api/v1/models`` item)."""
    newest = model.versions[0] if model.versions else None
    dates = [d for d in (_date(v.published_at) for v in model.versions) if d is not None]
    previews = _images(newest, max_nsfw_level) if newest is not None else ()
    return ModelSummary(
        id=model.id,
        name=line_text(model.name),
        creator=line_text(model.creator.username),
        type=line_text(model.type),
        base_model=line_text(newest.base_model if newest else ""),
        downloads=_count(model.stats.get("downloadCount")),
        rating=rating(model.stats),
        newest_version_date=max(dates, default=None),
        preview=previews[0] if previews else None,
    )


def _file(file: ModelFile) -> FileInfo:
    return FileInfo(
        id=file.id,
        name=line_text(file.name, 300),
        size_bytes=file.size or 0,
        format=line_text(file.format or ""),
        fp=line_text(file.fp) if file.fp else None,
        pickle_scan=line_text(file.pickle_scan_result or "Pending"),
        virus_scan=line_text(file.virus_scan_result or "Pending"),
        primary=file.primary,
    )


def version_info(version: ModelVersion, max_nsfw_level: int) -> VersionInfo:
    return VersionInfo(
        id=version.id,
        name=line_text(version.name),
        base_model=line_text(version.base_model),
        published_at=_date(version.published_at),
        files=tuple(_file(f) for f in version.files),
        trained_words=tuple(line_text(w) for w in version.trained_words[:MAX_WORDS]),
        images=_images(version, max_nsfw_level)[:MAX_IMAGES],
    )


def commercial_use(value: Any) -> tuple[str, ...]:
    """``allowCommercialUse``: ``"{Image,RentCivit}"``, ``["Image"]`` or ``"None"`` as a tuple."""
    if isinstance(value, str):
        parts = value.strip("{}").split(",")
    elif isinstance(value, list):
        parts = [p for p in value if isinstance(p, str)]
    else:
        parts = []
    return tuple(line_text(p) for p in parts if p.strip() and p.strip() != "None")


def detail(
    data: Mapping[str, Any], page_url: str, max_nsfw_level: int, age_s: float = 0.0
) -> ModelDetail:
    """The detail pane of ``/api/v1/models/{id}``'s answer (``ValueError`` without an id)."""
    model = Model.from_json(data)
    return ModelDetail(
        summary=summary(model, max_nsfw_level),
        description_text=description_text(data.get("description")),
        allow_commercial_use=commercial_use(data.get("allowCommercialUse")),
        allow_no_credit=data.get("allowNoCredit") is True,
        versions=tuple(version_info(v, max_nsfw_level) for v in model.versions),
        page_url=page_url,
        age_s=age_s,
    )
