"""Fetching the images CivitAI's answers point at (previews beside models, Browse).

Each redirect is followed by hand and checked like any URL from the API (no
internal hosts, no downgrade to http); only PNG, JPEG, WebP and GIF bodies of
bounded size are accepted, recognised by their first bytes (CivitAI's extensions
and content types can be wrong: a ``.jpeg`` may be WebP). The session's
connector brings the proxy and TLS trust (:mod:`civitai_tui.net`).
:func:`sized_url` asks CivitAI's image CDN for a given width (its ``/width=N/`` path segment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from civitai_tui.civitai.urls import REDIRECT_STATUSES, check_fetch, check_redirect
from civitai_tui.errors import CivitaiTuiError, FailureKind

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_REDIRECTS = 3
IMAGE_SUFFIXES = {
    "image/png": ".png",
    "image/jpeg": ".jpeg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}
_SIZE_SEGMENT = re.compile(r"^(width=\d+|original=true)$")


def image_type(data: bytes) -> str | None:
    """The image type of ``data`` from its first bytes, or None when it is no image we take."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


@dataclass(frozen=True)
class Image:
    data: bytes
    content_type: str  # one of IMAGE_SUFFIXES


def sized_url(url: str, width: int) -> str:
    """``url`` with its ``/width=N/`` (or ``/original=true/``) segment set to ``width``;
    a URL without one gets it before the file name, as the CDN accepts."""
    parts = urlsplit(url)
    segments = parts.path.split("/")
    for index, segment in enumerate(segments):
        if _SIZE_SEGMENT.match(segment):
            segments[index] = f"width={width}"
            break
    else:
        segments.insert(max(1, len(segments) - 1), f"width={width}")
    return urlunsplit(parts._replace(path="/".join(segments)))


def _refused(url: str, why: str) -> CivitaiTuiError:
    host = urlsplit(url).hostname or "?"
    return CivitaiTuiError(FailureKind.API, f"no image from {host}: {why}")


async def fetch_image(
    session: aiohttp.ClientSession,
    url: str,
    *,
    allow_http: bool = False,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> Image:
    """The image at ``url``; ``CivitaiTuiError`` says why there is none."""
    check_fetch(url, allow_http)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            async with session.get(url, allow_redirects=False) as resp:
                location = resp.headers.get("Location")
                if resp.status in REDIRECT_STATUSES and location:
                    url = check_fetch(check_redirect(url, location, allow_http), allow_http)
                    continue
                declared = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if resp.status != 200:
                    raise _refused(url, f"HTTP {resp.status}")
                data = await resp.content.read(max_bytes + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _refused(url, str(exc) or type(exc).__name__) from exc
        if len(data) > max_bytes:
            raise _refused(url, f"larger than {max_bytes} bytes")
        kind = image_type(data)
        if kind is None:
            raise _refused(url, f"not a PNG, JPEG, WebP or GIF image ({declared or 'no type'})")
        return Image(data, kind)
    raise _refused(url, f"more than {MAX_REDIRECTS} redirects")
