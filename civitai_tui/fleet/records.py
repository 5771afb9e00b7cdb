"""A download request as the JSON text the fleet's server keeps for each file.

The request's own record (``DownloadRequest.to_record``, the one ``state.db`` keeps): the
file's facts, its source (a CivitAI version/file id or a URL), where it goes and how to
verify it. Never a token: CivitAI files are resolved by the engine that claims them,
with its own key.
"""

from __future__ import annotations

import dataclasses
import json

from civitai_tui.download.request import DownloadRequest


def request_text(request: DownloadRequest) -> str:
    """``request`` as the server keeps it."""
    return json.dumps(request.to_record())


def request_from_text(text: str, key: str) -> DownloadRequest:
    """The request in ``text``; ``key`` names the file in this engine's events."""
    request = DownloadRequest.from_record(json.loads(text))
    return dataclasses.replace(request, info=dataclasses.replace(request.info, key=key))
