"""One set of library rules for ``get`` and the queue: where a file goes, what lands beside it.

``bulk.layout`` / ``bulk.template`` place every named file under the
destination (:class:`~civitai_tui.civitai.layouts.LibraryLayout`); once a file
is in place, ``bulk.sidecars`` writes ``<file name>.civitai.json`` beside it and
``bulk.previews`` fetches the version's preview image. The engine's manager and
``civitai-tui get`` both call these, so a file lands in the same place with the
same companions whichever way it was downloaded.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp

from civitai_tui.binding import bound
from civitai_tui.bulk.sidecars import fetch_preview, sidecar_path, write_sidecar
from civitai_tui.civitai.layouts import LibraryLayout
from civitai_tui.config import OPTIONS
from civitai_tui.download.request import DownloadRequest
from civitai_tui.events import FileInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LibrarySettings:
    """The ``bulk.*`` keys that decide placement and companions."""

    layout: str = bound("bulk.layout", OPTIONS["bulk.layout"].default)
    template: str = bound("bulk.template", OPTIONS["bulk.template"].default)
    sidecars: bool = bound("bulk.sidecars", OPTIONS["bulk.sidecars"].default)
    previews: bool = bound("bulk.previews", OPTIONS["bulk.previews"].default)
    preview_nsfw_level: int = bound(
        "bulk.preview_nsfw_level", OPTIONS["bulk.preview_nsfw_level"].default
    )


def place(layout: LibraryLayout, request: DownloadRequest) -> DownloadRequest:
    """``request`` with its final folder and name by ``layout``.

    A file whose name comes only from the server (a plain URL) stays in the
    destination folder: its type is not known before the download.
    """
    if not request.filename:
        return request
    path = layout.place(request.info, request.filename)
    return replace(request, dest_dir=path.parent, filename=path.name)


async def add_companions(
    session: aiohttp.ClientSession | None,
    model: Path,
    info: FileInfo,
    sha256: str | None,
    preview_url: str | None,
    *,
    sidecars: bool,
    previews: bool,
    base_url: str,
    allow_http: bool,
) -> str | None:
    """The sidecar JSON and the preview image beside a model file that is in place.

    Returns what went wrong, if anything (a sidecar that could not be written:
    also logged), for the file's record; the model itself stays done.
    """
    warning = None
    if sidecars:
        try:
            await asyncio.to_thread(write_sidecar, model, info, sha256, base_url)
        except OSError as exc:
            warning = f"{sidecar_path(model).name} not written: {exc.strerror or exc}"
            log.warning("%s: %s", model, warning)
    if previews and preview_url and session is not None:
        await fetch_preview(session, preview_url, model, allow_http=allow_http)
    return warning
