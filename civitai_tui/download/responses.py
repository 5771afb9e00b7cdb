"""Strict checks of a storage response before any of its bytes are written.

A ranged request must get 206 with a ``Content-Range`` whose start, end and total
match what was asked; a 200 means the server ignored ``Range`` (or, after
``If-Range``, that the file changed); any ``Content-Encoding`` other than
identity is refused; ``Content-Length`` must agree; and an HTML or JSON body is
never taken for the file. Error statuses become :class:`CivitaiTuiError` with
the right kind. Pure functions over status, headers and the first bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import aiohttp

from civitai_tui.download.retry import parse_retry_after
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.net.failures import network_failure, through, tunnel_refused
from civitai_tui.net.policy import refusal
from civitai_tui.net.proxy import Proxy

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)
_PAGE_PREFIXES = (b"<!doctype", b"<html", b"<?xml", b'{"error"', b"<head", b"<body")


@dataclass(frozen=True)
class ContentRange:
    start: int
    end: int  # inclusive, as on the wire
    total: int | None


def parse_content_range(value: str | None) -> ContentRange | None:
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        return None
    start, end, total = int(m[1]), int(m[2]), m[3]
    return ContentRange(start, end, None if total == "*" else int(total))


def unsatisfied_total(value: str | None) -> int | None:
    """The size a 416 answer reports in ``Content-Range: bytes */size``."""
    m = _UNSATISFIED_RANGE.match(value or "")
    return int(m[1]) if m else None


def protocol_error(message: str, status: int | None = None) -> CivitaiTuiError:
    return CivitaiTuiError(FailureKind.PROTOCOL, message, status=status)


def status_error(status: int, headers: Mapping[str, str], where: str) -> CivitaiTuiError:
    """The error for a non-2xx storage answer."""
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status in (429, 503):
        return CivitaiTuiError(
            FailureKind.RATE_LIMITED,
            f"{where} is busy (HTTP {status}); waiting before trying again",
            status=status,
            retry_after=retry_after,
        )
    if status >= 500:
        return CivitaiTuiError(
            FailureKind.SERVER, f"{where} failed with HTTP {status}", status=status
        )
    if status == 408:
        return CivitaiTuiError(FailureKind.NETWORK, f"{where} timed out (HTTP 408)", status=status)
    if status == 407:  # a proxy forwarding an http:// request wants credentials
        return tunnel_refused(where, None, status, "")
    known = {
        401: (FailureKind.AUTH_REQUIRED, "refused the request (HTTP 401): check CIVITAI_API_KEY"),
        403: (
            FailureKind.FORBIDDEN,
            "refused access (HTTP 403), also after asking for a fresh link: the file may be "
            "restricted to some accounts (check your API key: `civitai-tui login`) or "
            "withdrawn; `civitai-tui retry` the job later",
        ),
        404: (FailureKind.NOT_FOUND, "has no such file (HTTP 404): it may have been removed"),
        410: (FailureKind.GONE, "says the file is gone (HTTP 410): it was taken down"),
    }
    kind, text = known.get(
        status, (FailureKind.API, f"answered HTTP {status}, which the downloader cannot use")
    )
    return CivitaiTuiError(kind, f"{where} {text}", status=status)


def check_encoding(headers: Mapping[str, str]) -> None:
    encoding = headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise protocol_error(
            f"the server compressed the file (Content-Encoding: {encoding}) although identity "
            "was asked for; the bytes cannot be written at their offset"
        )


def check_content_type(headers: Mapping[str, str]) -> None:
    ctype = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if ctype in ("text/html", "application/xhtml+xml"):
        raise bad_content("an HTML page")
    if ctype == "application/json" or ctype.endswith("+json"):
        raise bad_content("a JSON message")


def sniff_body(first_bytes: bytes) -> None:
    """Refuse a body that starts like a web page or a JSON error."""
    head = first_bytes[:64].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(_PAGE_PREFIXES):
        raise bad_content("an HTML page" if head.startswith(b"<") else "a JSON error")


def bad_content(what: str) -> CivitaiTuiError:
    return CivitaiTuiError(
        FailureKind.BAD_CONTENT,
        f"the server sent {what} instead of the file (often a login or error page): check "
        "CIVITAI_API_KEY and that the file can still be downloaded",
    )


def check_partial(
    headers: Mapping[str, str], start: int, end: int, size: int | None
) -> ContentRange:
    """Validate a 206 for ``bytes=start-(end-1)``; returns the parsed Content-Range."""
    cr = parse_content_range(headers.get("Content-Range"))
    if cr is None:
        shown = headers.get("Content-Range")
        raise protocol_error(f"206 without a usable Content-Range: {shown!r}")
    total = cr.total if cr.total is not None else size
    want_end = end - 1 if total is None else min(end, total) - 1
    if cr.start != start or cr.end != want_end:
        raise protocol_error(
            f"asked for bytes {start}-{end - 1} but the server sent {cr.start}-{cr.end}"
        )
    if size is not None and cr.total is not None and cr.total != size:
        raise protocol_error(f"the file is {cr.total} bytes now, {size} before")
    check_length(headers, cr.end - cr.start + 1)
    return cr


def check_length(headers: Mapping[str, str], expected: int) -> None:
    value = headers.get("Content-Length")
    if value is not None and value.strip() != str(expected):
        raise protocol_error(f"Content-Length {value} does not match the {expected} bytes expected")


def strong_etag(headers: Mapping[str, str]) -> str | None:
    """The ETag usable in ``If-Range`` (weak ETags are not)."""
    etag = headers.get("ETag")
    return etag if etag and not etag.startswith("W/") else None


def stalled_error(timeout: float) -> CivitaiTuiError:
    """No bytes for ``timeout`` seconds: retryable, the connection is replaced."""
    return CivitaiTuiError(
        FailureKind.STALLED, f"no data from the server for {timeout:g} s; reconnecting"
    )


@contextmanager
def network_errors(
    stall_timeout: float, route: Callable[[], tuple[str, Proxy | None]] | None = None
) -> Iterator[None]:
    """Turn aiohttp and timeout exceptions into retryable :class:`CivitaiTuiError`.

    ``route()`` gives the host and the proxy taken, named in certificate and proxy errors.
    """
    try:
        yield
    except TimeoutError as exc:
        raise stalled_error(stall_timeout) from exc
    except aiohttp.ClientPayloadError as exc:
        raise CivitaiTuiError(
            FailureKind.NETWORK, f"the connection broke mid-transfer ({exc})"
        ) from exc
    except aiohttp.ClientError as exc:
        refused = refusal(exc)
        if refused is not None:
            raise refused from exc
        host, proxy = route() if route is not None else ("the storage server", None)
        specific = network_failure(exc, host, proxy)
        if specific is not None:
            raise specific from exc
        raise CivitaiTuiError(FailureKind.NETWORK, f"network error{through(proxy)}: {exc}") from exc


def closed_unanswered(message: str) -> bool:
    """A network error where the server closed the connection before any answer, or
    left a new one unanswered while others moved bytes (:func:`unanswered_error`).

    Servers that limit connections per client by closing (or ignoring) the ones over
    the limit look like this (http.client and aiohttp word it differently).
    """
    text = message.lower()
    return "without response" in text or "server disconnected" in text or "unanswered" in text


def unanswered_error(seconds: float) -> CivitaiTuiError:
    """A request with no answer for ``seconds`` while the host's other connections move
    bytes: a connection limit enforced by hanging (a refusal, not a stall)."""
    return CivitaiTuiError(
        FailureKind.NETWORK,
        f"a new request left unanswered for {seconds:.1f} s while other connections move "
        "bytes: read as the server's connection limit",
    )
