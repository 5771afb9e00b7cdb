"""Turns catalogue objects into the JSON shapes of the real CivitAI API.

Listings (``/api/v1/models``) and full versions (``/api/v1/model-versions``)
differ the way the real server's do: ``primary`` is ``true`` or absent in
listings and ``true``/``false`` in versions; archived models list ``files: []``
and no ``downloadUrl``. Hashes must be ready (``SimFile.hashes_ready``) or they
are computed here, synchronously.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from civitai_tui.simulator.catalogue import SimFile, SimImage, SimModel, SimVersion

AIR_ECOSYSTEM = {
    "SD 1.5": "sd1",
    "SDXL 1.0": "sdxl",
    "Flux.1 D": "flux1",
    "Pony": "pony",
    "Illustrious": "illustrious",
}
AIR_TYPE = {"LoCon": "lycoris", "TextualInversion": "embedding"}


@dataclass(frozen=True)
class Origins:
    """The two origins that absolute URLs in responses point at."""

    api_url: str
    storage_url: str


def iso(moment: datetime | None) -> str | None:
    """``2024-11-11T11:46:50.924Z``, as the API writes dates."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def download_url(origins: Origins, file: SimFile) -> str:
    base = f"{origins.api_url}/api/download/models/{file.version_id}"
    if file.primary:
        return base
    query = {"type": file.type, "format": file.format, "size": file.size_label, "fp": file.fp}
    return base + "?" + urlencode({k: v for k, v in query.items() if v is not None})


def file_json(origins: Origins, file: SimFile, *, listing: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": file.id,
        "sizeKB": file.size_kb,
        "name": file.name,
        "type": file.type,
        "pickleScanResult": file.pickle_scan,
        "pickleScanMessage": file.pickle_message,
        "virusScanResult": file.virus_scan,
        "virusScanMessage": None,
        "scannedAt": iso(file.scanned_at),
        "metadata": {"format": file.format, "size": file.size_label, "fp": file.fp},
        "hashes": file.api_hashes(),
        "downloadUrl": download_url(origins, file),
    }
    if file.primary or not listing:
        data["primary"] = file.primary
    return data


#: The first path segment of gallery image URLs (CivitAI's CDN has an account key there).
CDN_KEY = "xG1nkqKTMzGDvpLrqFT7WA"


def image_url(origins: Origins, image: SimImage) -> str:
    """A tiny PNG's own URL, or a gallery picture's CDN-style one (``/width=N/``)."""
    if not image.drawn:
        return f"{origins.storage_url}/images/{image.id}.png"
    uuid = hashlib.md5(str(image.id).encode()).hexdigest()
    uuid = f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}"
    name = f"{image.id}.{image.drawn}"
    return f"{origins.storage_url}/{CDN_KEY}/{uuid}/width={image.width}/{name}"


def image_json(origins: Origins, image: SimImage) -> dict[str, Any]:
    return {
        "url": image_url(origins, image),
        "nsfwLevel": image.nsfw_level,
        "width": image.width,
        "height": image.height,
        "hash": image.blurhash,
        "type": "image",
        "metadata": {
            "hash": image.blurhash,
            "size": len(image.png) or image.width * image.height // 8,
            "width": image.width,
            "height": image.height,
        },
        "meta": None,
        "minor": False,
        "poi": False,
        "hasMeta": False,
        "hasPositivePrompt": False,
        "remixOfId": None,
    }


def air(model: SimModel, version: SimVersion) -> str:
    ecosystem = AIR_ECOSYSTEM.get(version.base_model, "other")
    kind = AIR_TYPE.get(model.type, model.type.lower())
    return f"urn:air:{ecosystem}:{kind}:civitai:{model.id}@{version.id}"


def _version_core(origins: Origins, model: SimModel, version: SimVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "name": version.name,
        "createdAt": iso(version.created_at),
        "updatedAt": iso(version.published_at),
        "status": "Published",
        "publishedAt": iso(version.published_at),
        "nsfwLevel": version.nsfw_level,
        "trainedWords": list(version.trained_words),
        "baseModel": version.base_model,
        "baseModelType": "Standard",
        "earlyAccessEndsAt": iso(version.early_access_ends_at),
        "description": version.description,
        "air": air(model, version),
        "stats": {
            "downloadCount": version.download_count,
            "thumbsUpCount": version.thumbs_up,
            "thumbsDownCount": version.thumbs_up // 50,
        },
        "images": [image_json(origins, image) for image in version.images],
    }


def listed_version_json(
    origins: Origins, model: SimModel, version: SimVersion, *, primary_only: bool
) -> dict[str, Any]:
    """A version inside a ``/api/v1/models`` item."""
    data = _version_core(origins, model, version)
    archived = model.mode == "Archived"
    files = [] if archived else [f for f in version.files if f.primary or not primary_only]
    data["files"] = [file_json(origins, f, listing=True) for f in files]
    if not archived:
        data["downloadUrl"] = f"{origins.api_url}/api/download/models/{version.id}"
    return data


def model_json(origins: Origins, model: SimModel, *, primary_only: bool = False) -> dict[str, Any]:
    """One item of ``/api/v1/models`` (and the body of ``/api/v1/models/{id}``)."""
    data: dict[str, Any] = {
        "id": model.id,
        "name": model.name,
        "description": model.description,
        "type": model.type,
        "nsfw": model.nsfw,
        "nsfwLevel": model.nsfw_level,
        "availability": "Public",
        "supportsGeneration": False,
        "allowNoCredit": model.allow_no_credit,
        "allowCommercialUse": model.licence,
        "allowDerivatives": True,
        "allowDifferentLicense": True,
        "minor": False,
        "poi": False,
        "sfwOnly": False,
        "stats": {
            "downloadCount": model.stats.download_count,
            "thumbsUpCount": model.stats.thumbs_up,
            "thumbsDownCount": model.stats.thumbs_down,
            "commentCount": model.stats.comments,
            "tippedAmountCount": model.stats.tipped,
        },
        "creator": {"username": model.creator, "image": None},
        "tags": list(model.tags),
        "modelVersions": [
            listed_version_json(origins, model, v, primary_only=primary_only)
            for v in model.versions
        ],
    }
    if model.mode is not None:
        data["mode"] = model.mode
    return data


def version_json(origins: Origins, model: SimModel, version: SimVersion) -> dict[str, Any]:
    """The body of ``/api/v1/model-versions/{id}`` and ``by-hash``."""
    data = _version_core(origins, model, version)
    data["modelId"] = model.id
    data["uploadType"] = "Created"
    data["usageControl"] = "Download"
    data["earlyAccessConfig"] = (
        {"timeframe": 7} if version.early_access_ends_at is not None else None
    )
    model_part: dict[str, Any] = {
        "name": model.name,
        "type": model.type,
        "nsfw": model.nsfw,
        "poi": False,
    }
    if model.mode is not None:
        model_part["mode"] = model.mode
    data["model"] = model_part
    data["files"] = [file_json(origins, f, listing=False) for f in version.files]
    data["downloadUrl"] = f"{origins.api_url}/api/download/models/{version.id}"
    return data
