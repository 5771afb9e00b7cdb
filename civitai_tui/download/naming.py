"""The final file name: the request's, else Content-Disposition's, else the URL path's.

Content-Disposition is parsed per RFC 6266 (``filename*=UTF-8''...`` wins over
``filename=``), and CivitAI's raw UTF-8 ``filename="..."`` is recovered even when
the header was decoded as Latin-1. Whatever the origin, the result is one safe
path component (:func:`civitai_tui.civitai.filenames.safe_filename`).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from civitai_tui.civitai.filenames import safe_filename

_PARAM = re.compile(
    r""";\s*(?P<key>[A-Za-z0-9!#$&+.^_`|~-]+\*?)\s*=\s*
        (?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[^;\s]*))""",
    re.VERBOSE,
)


def _fix_mojibake(text: str) -> str:
    """Undo a Latin-1 decoding of UTF-8 bytes; leave real Latin-1 text alone."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _ext_value(value: str) -> str | None:
    """Decode an RFC 8187 ``charset'lang'percent-encoded`` value."""
    charset, sep, rest = value.partition("'")
    _, sep2, encoded = rest.partition("'")
    if not (sep and sep2):
        return None
    try:
        return unquote(encoded, encoding=charset or "utf-8", errors="strict")
    except (LookupError, ValueError):  # unknown charset, a NUL in it, undecodable bytes
        return None


def filename_from_disposition(header: str | None) -> str | None:
    """The file name a Content-Disposition header gives, unsanitised, or None."""
    if not header:
        return None
    params: dict[str, str] = {}
    for m in _PARAM.finditer(";" + header.split(";", 1)[1] if ";" in header else ""):
        raw = m.group("quoted")
        value = re.sub(r"\\(.)", r"\1", raw) if raw is not None else m.group("token")
        params.setdefault(m.group("key").lower(), value)
    if "filename*" in params:
        decoded = _ext_value(params["filename*"])
        if decoded:
            return decoded
    name = params.get("filename")
    return _fix_mojibake(name) if name else None


def filename_from_url(url: str) -> str | None:
    """The last path segment of ``url``, percent-decoded, or None."""
    last = urlsplit(url).path.rsplit("/", 1)[-1]
    return unquote(last) or None


def choose_filename(
    requested: str | None, disposition: str | None, resolved: str | None, url: str
) -> str:
    """The sanitised final name from the first source that has one."""
    for candidate in (
        requested,
        filename_from_disposition(disposition),
        resolved,
        filename_from_url(url),
    ):
        if candidate and candidate.strip():
            return safe_filename(candidate)
    return safe_filename("", fallback="download.bin")
