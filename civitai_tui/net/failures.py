"""What a failed connection tells the user: the host, the proxy if one was used, the cause, the fix.

Shared by the API client, the aiohttp storage path and the threaded range
streams, so a certificate or proxy failure reads the same wherever it happens.
Proxies are shown by :attr:`Proxy.display` (credentials masked).
"""

from __future__ import annotations

import ssl

import aiohttp

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.net.connector import SOCKS_ERRORS, ProxyFailure
from civitai_tui.net.proxy import Proxy
from civitai_tui.net.tls import reason_of, untrusted

#: What ``http.client`` raises when a proxy answers CONNECT with an error status.
_TUNNEL_REFUSED = "Tunnel connection failed: "
_PROXY_SETTINGS = "check network.proxy / HTTPS_PROXY / HTTP_PROXY / ALL_PROXY"


def is_certificate_error(exc: BaseException) -> bool:
    return isinstance(exc, ssl.SSLCertVerificationError | aiohttp.ClientConnectorCertificateError)


def network_failure(exc: BaseException, host: str, proxy: Proxy | None) -> CivitaiTuiError | None:
    """The error for a certificate or proxy failure reaching ``host``; None for other failures."""
    if is_certificate_error(exc):
        return untrusted(host, reason_of(exc))
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return tunnel_refused(host, proxy, exc.status, exc.message)
    text = str(exc)
    if isinstance(exc, OSError) and text.startswith(_TUNNEL_REFUSED):
        status, _, message = text.removeprefix(_TUNNEL_REFUSED).partition(" ")
        return tunnel_refused(host, proxy, int(status) if status.isdigit() else 0, message)
    if isinstance(exc, ProxyFailure):
        return _via(exc.proxy, host, exc.reason)
    if proxy is not None and isinstance(exc, (aiohttp.ClientProxyConnectionError, *SOCKS_ERRORS)):
        return _via(proxy, host, text or type(exc).__name__)
    return None


def through(proxy: Proxy | None) -> str:
    """`` through the proxy X`` when a proxy was used (for generic connection errors)."""
    return f" through the proxy {proxy.display}" if proxy is not None else ""


def tunnel_refused(host: str, proxy: Proxy | None, status: int, message: str) -> CivitaiTuiError:
    """The proxy answered the tunnel request (CONNECT) with an error status."""
    shown = f"the proxy {proxy.display}" if proxy is not None else "the proxy"
    if status == 407:
        return CivitaiTuiError(
            FailureKind.BAD_CONFIG,
            f"{shown} wants credentials to reach {host} (HTTP 407); put them in the "
            "proxy URL (http://user:password@host:port) in network.proxy or HTTPS_PROXY",
            status=status,
        )
    return CivitaiTuiError(
        FailureKind.NETWORK,
        f"{shown} refused the tunnel to {host} (HTTP {status} {message.strip()}); "
        f"{_PROXY_SETTINGS}, or list {host} in NO_PROXY / network.no_proxy",
        status=status,
    )


def _via(proxy: Proxy, host: str, reason: str) -> CivitaiTuiError:
    return CivitaiTuiError(
        FailureKind.NETWORK,
        f"cannot reach {host} through the proxy {proxy.display} ({reason}); {_PROXY_SETTINGS}",
    )
