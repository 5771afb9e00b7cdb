"""URL safety rules shared by the API client and the downloader.

* Only ``http`` and ``https``; plain ``http://`` only for loopback hosts
  (127.0.0.0/8, ``::1``, ``localhost``) unless the user passed ``--allow-http``.
* A redirect obeys the same rules, never goes from https to http, and a public
  host may never redirect to a private, link-local, loopback or otherwise
  non-global address (SSRF guard). Hosts are read the way the resolver will
  (every IPv4 spelling, IPv6, IPv4-mapped: :mod:`civitai_tui.net.policy`);
  names are checked at connect time by the policy's resolver.
* TLS is always verified: nothing in this package ever passes ``ssl=False``.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.net.policy import current, is_internal_host, is_loopback_host
from civitai_tui.security.redact import mask_url

_DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``url``, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0)


def same_origin(a: str, b: str) -> bool:
    """True when both URLs share scheme, host and port (where a token may go)."""
    return origin(a) == origin(b)


def check_url(url: str, allow_http: bool = False) -> str:
    """``url`` unchanged if it is an acceptable http(s) URL, else INSECURE_URL/BAD_TARGET."""
    scheme, host, _ = origin(url)
    shown = mask_url(url)
    if scheme not in _DEFAULT_PORTS:
        raise CivitaiTuiError(
            FailureKind.INSECURE_URL,
            f"{shown}: only http(s) URLs can be downloaded (scheme {scheme or 'missing'!r})",
        )
    if not host:
        raise CivitaiTuiError(FailureKind.BAD_TARGET, f"{shown}: the URL has no host name")
    if scheme == "http" and not allow_http and not is_loopback_host(host):
        raise CivitaiTuiError(
            FailureKind.INSECURE_URL,
            f"{shown}: plain http:// is refused for non-loopback hosts because the traffic "
            "can be read and changed on the way; use https://, or pass --allow-http if you "
            "trust the network",
        )
    return url


def check_redirect(from_url: str, to_url: str, allow_http: bool = False) -> str:
    """The absolute redirect target if following it is safe, else INSECURE_URL."""
    target = urljoin(from_url, to_url)
    check_url(target, allow_http)
    (from_scheme, from_host, _), (to_scheme, to_host, _) = origin(from_url), origin(target)
    if from_scheme == "https" and to_scheme == "http":
        raise CivitaiTuiError(
            FailureKind.INSECURE_URL,
            f"refusing a redirect from {mask_url(from_url)} to the plain-http "
            f"{mask_url(target)} (a downgrade from https would expose the transfer)",
        )
    if not is_internal_host(from_host) and is_internal_host(to_host):
        raise CivitaiTuiError(
            FailureKind.INSECURE_URL,
            f"refusing a redirect from {mask_url(from_url)} to the internal address "
            f"{mask_url(target)} (a public server may not point us at private, loopback "
            "or link-local hosts)",
        )
    return target


def check_fetch(url: str, allow_http: bool = False) -> str:
    """A URL the API handed us (previews): acceptable, and not an internal literal.

    Names are checked when they are resolved; an IP literal never reaches the
    resolver, so it is checked here against the policy in force.
    """
    check_url(url, allow_http)
    host = origin(url)[1]
    if is_internal_host(host) and not current().may_reach(host, host):
        raise CivitaiTuiError(
            FailureKind.INSECURE_URL,
            f"refusing {mask_url(url)}: a public server may not point us at the internal "
            "address " + host,
        )
    return url
