"""Secret masking for everything that leaves the process: logs, events, errors, storage.

Three layers use it: ``mask_url`` before a URL is stored or shown, ``mask_text``
on exception messages and free text, and :class:`RedactingFilter` on every log
handler. Known secrets (the configured API token) are registered with
:func:`register_secret` and masked wherever they appear, whatever their shape.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

SENSITIVE_PARAMS = frozenset(
    {
        "token",
        "api_key",
        "apikey",
        "key",
        "access_token",
        "auth",
        "authorization",
        "password",
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "expires_sig",
    }
)
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)


def _mask_credential(m: re.Match[str]) -> str:
    scheme = f"{m.group(3)} " if m.group(3) else ""
    return f"{m.group(1)}{m.group(2)}{scheme}{MASK}"


_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (
        re.compile(
            r"(?i)\b(authorization|proxy-authorization|x-api-key)(['\"]?\s*[:=]\s*['\"]?)"
            r"(?:(bearer|basic|token)\s+)?[^\s,;'\"}]+"
        ),
        _mask_credential,
    ),
    (
        re.compile(
            r"(?i)([?&](?:token|api_?key|key|access_token|auth|sig|signature"
            r"|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&#\s'\"]+"
        ),
        r"\1" + MASK,
    ),
    (
        re.compile(
            r"(?i)\b(civitai_?(?:api_?)?(?:token|key)|hf_token|api_?key|(?:access_)?token)"
            r"(\s*[:=]\s*['\"]?)[^\s'\",;&]+"
        ),
        r"\1\2" + MASK,
    ),
    (re.compile(r"(?i)\b(bearer\s+)(?!\*\*\*)[^\s,;'\"}]+"), r"\1" + MASK),
    # URL userinfo: scheme://user:password@host (or a token as the user name).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)(?!\*\*\*@)[^\s/@'\"<>]+@"), r"\1" + MASK + "@"),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), "hf_" + MASK),
    # A bare CivitAI key (32 lowercase hex); longer hashes are left alone.
    (re.compile(r"(?<![0-9A-Fa-f])[0-9a-f]{32}(?![0-9A-Fa-f])"), MASK),
]

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Mask ``secret`` wherever it appears from now on (ignored if shorter than 6)."""
    if secret and len(secret) >= 6:
        with _secrets_lock:
            _secrets.add(secret)


def mask_text(text: str) -> str:
    """``text`` with tokens, keys, signatures and registered secrets replaced by ``***``."""
    with _secrets_lock:
        # Longest first: a secret that contains a shorter registered one is masked whole.
        secrets = tuple(sorted(_secrets, key=len, reverse=True))
    folded = text.lower() if secrets else text
    for secret in secrets:  # in any case: a server may echo it upper-cased
        if secret.lower() in folded:
            text = re.sub(re.escape(secret), MASK, text, flags=re.IGNORECASE)
    for rx, rep in _PATTERNS:
        text = rx.sub(rep, text)
    return text


#: What is not part of a parameter name (``??token=`` still names a token).
_PARAM_NAME = re.compile(r"[^a-z0-9_-]")


def mask_url(url: str) -> str:
    """``url`` without credentials, fragment or sensitive query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    query = [
        (k, MASK if _PARAM_NAME.sub("", k.lower()) in SENSITIVE_PARAMS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return mask_text(urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*"), "")))


def mask_target(target: str) -> str:
    """A job target as it may be stored or shown: a URL without its secrets."""
    return mask_url(target) if "://" in target else target


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with credential headers masked."""
    return {
        k: (MASK if k.lower() in SENSITIVE_HEADERS else mask_text(v)) for k, v in headers.items()
    }


class RedactingFilter(logging.Filter):
    """Masks secrets in every record (message, arguments and exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
