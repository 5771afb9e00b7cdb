"""What a signed storage URL tells us without fetching it: its expiry and file name.

CivitAI's ``/api/download`` redirects to a pre-signed URL. S3-style signatures
carry ``X-Amz-Date`` + ``X-Amz-Expires``; the simulator (and some CDNs) carry a
unix ``expires=``. The file name comes from the ``response-content-disposition``
query parameter when present, else from the last path segment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

from civitai_tui.download.naming import filename_from_disposition
from civitai_tui.download.naming import filename_from_url as filename_from_path


def _query(url: str) -> dict[str, str]:
    return {k.lower(): v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)}


def signed_url_expiry(url: str) -> float | None:
    """The unix time at which ``url`` stops working, or None when it carries none."""
    query = _query(url)
    try:
        if "expires" in query:
            return float(query["expires"])
        if "x-amz-date" in query and "x-amz-expires" in query:
            signed = datetime.strptime(query["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            return signed.timestamp() + float(query["x-amz-expires"])
    except ValueError:
        return None
    return None


def filename_from_url(url: str) -> str | None:
    """The server's name for the file behind ``url`` (unsanitised), or None."""
    disposition = _query(url).get("response-content-disposition")
    if disposition:
        name = filename_from_disposition(disposition)
        if name:
            return name
    return filename_from_path(url)
