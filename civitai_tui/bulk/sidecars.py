"""Sidecar files beside each downloaded model: ``<file name>.civitai.json`` and a preview.

WebUIs and library tools read these: the JSON says where the file came from
(model, version, file ids and names, creator, base model, SHA256, the CivitAI
page) and the preview is the version's first image at or below the chosen NSFW
level. The JSON is named after the *whole* file name (``x.safetensors.civitai.json``),
so ``x.pth`` and ``x.safetensors`` of different models never share one; the
preview keeps the WebUI convention ``<stem>.preview.<ext>`` (that is where A1111
and ComfyUI look for it, by stem). Both are written atomically; a preview that
cannot be fetched or written is skipped with a log line, and a JSON that cannot
be written raises for the caller to report, never failing the model file.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from civitai_tui.atomic import write_atomic
from civitai_tui.civitai.images import IMAGE_SUFFIXES, fetch_image
from civitai_tui.errors import CivitaiTuiError
from civitai_tui.events import FileInfo
from civitai_tui.security.redact import mask_url

log = logging.getLogger(__name__)

MAX_PREVIEW_BYTES = 20 * 1024 * 1024


def sidecar_path(model: Path) -> Path:
    """``x.safetensors`` → ``x.safetensors.civitai.json`` (one per file name, no collisions)."""
    return model.with_name(model.name + ".civitai.json")


def write_sidecar(model: Path, info: FileInfo, sha256: str | None, base_url: str) -> Path:
    """Write ``<file name>.civitai.json`` beside ``model``; returns its path (OSError raises)."""
    page = None
    if info.model_id:
        page = f"{base_url.rstrip('/')}/models/{info.model_id}"
        if info.version_id:
            page += f"?modelVersionId={info.version_id}"
    data = {
        "modelId": info.model_id,
        "modelVersionId": info.version_id,
        "fileId": info.file_id,
        "model": {"name": info.model_name, "type": info.model_type},
        "version": {"name": info.version_name, "baseModel": info.base_model},
        "creator": info.creator,
        "file": {"name": model.name, "sizeBytes": model.stat().st_size, "sha256": sha256},
        "source": mask_url(page) if page else None,
        "downloadedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "downloadedBy": "civitai-tui",
    }
    path = sidecar_path(model)
    write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())
    return path


async def fetch_preview(
    session: aiohttp.ClientSession, url: str, model: Path, *, allow_http: bool = False
) -> Path | None:
    """Download the preview image beside ``model``; None when it cannot be had
    (:func:`~civitai_tui.civitai.images.fetch_image` checks every redirect)."""
    try:
        image = await fetch_image(session, url, allow_http=allow_http, max_bytes=MAX_PREVIEW_BYTES)
    except CivitaiTuiError as err:
        log.info("no preview for %s: %s", model.name, err.message)
        return None
    except Exception as exc:  # a preview is a nicety: never fail the model for it
        log.info("no preview for %s: %s", model.name, type(exc).__name__)
        return None
    path = model.with_name(model.stem + ".preview" + IMAGE_SUFFIXES[image.content_type])
    try:
        write_atomic(path, image.data)
    except OSError as exc:
        log.warning("no preview for %s: cannot write %s: %s", model.name, path, exc)
        return None
    log.info("preview for %s from %s", model.name, urlsplit(mask_url(url)).hostname)
    return path
