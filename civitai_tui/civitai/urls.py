"""URL safety rules shared by the API client and the downloader.

* Only ``http`` and ``https``; plain ``http://`` only for loopback hosts
  (127.0.0.0/8, ``::1``, ``localhost``) unless the user passed ``--allow-http``.
* A redirect obeys the same rules, and a public host may never redirect to a
  private, link-local, loopback or otherwise non-global address (SSRF guard).
  Host names other than ``localhost`` are not resolved here: the guard covers
  IP literals and loopback names, which is what a hostile ``Location`` uses.
* TLS is always verified: nothing in this package ever passes ``ssl=False``.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urljoin, urlsplit

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security.redact import mask_url

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK_NAMES = ("localhost", "localhost.")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ``::1`` and ``localhost`` (or a ``*.localhost`` name)."""
    host = host.lower()
    if host in _LOOPBACK_NAMES or host.rstrip(".").endswith(".localhost"):
        return True
    ip = _ip(host)
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def is_internal(host: str) -> bool:
    """True for loopback, private, link-local, reserved or unspecified addresses."""
    if is_loopback(host):
        return True
    ip = _ip(host)
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


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
    if scheme == "http" and not allow_http and not is_loopback(host):
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
    from_host, to_host = origin(from_url)[1], origin(target)[1]
    if not is_internal(from_host) and is_internal(to_host):
        raise CivitaiTuiError(
            FailureKind.INSECURE_URL,
            f"refusing a redirect from {mask_url(from_url)} to the internal address "
            f"{mask_url(target)} (a public server may not point us at private, loopback "
            "or link-local hosts)",
        )
    return target
