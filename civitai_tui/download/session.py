"""The aiohttp session that fetches file bytes from storage hosts.

Tuned for long bulk transfers (download-engines.md §4.1): no total timeout
(the default ``total=300`` kills long downloads), ``sock_read`` for idle reads,
``Accept-Encoding: identity`` so CDNs honour ``Range``, no transparent
decompression, a large read buffer for ``iter_any``, keep-alive reuse. It never
carries the API token: storage URLs are signed and need no Authorization.
Requests are routed (proxies, TLS trust) by :class:`~civitai_tui.net.connector.RoutedConnector`.
"""

from __future__ import annotations

import aiohttp

from civitai_tui import __version__
from civitai_tui.net.connector import RoutedConnector
from civitai_tui.net.network import Network

READ_BUFSIZE = 1 << 20
USER_AGENT = f"civitai-tui/{__version__}"


def create_download_session(
    *,
    limit: int = 64,
    limit_per_host: int = 32,
    read_bufsize: int = READ_BUFSIZE,
    sock_connect: float = 30.0,
    sock_read: float = 30.0,
    trace_configs: list[aiohttp.TraceConfig] | None = None,
    network: Network | None = None,
) -> aiohttp.ClientSession:
    """A session for file bytes; close it with ``await session.close()``.

    ``network``: its routes and trust; None follows the installed one (``net.network``).
    """
    connector = RoutedConnector(
        network,
        limit=limit,
        limit_per_host=limit_per_host,
        ttl_dns_cache=300,
        keepalive_timeout=30,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=sock_connect, sock_read=sock_read),
        auto_decompress=False,
        read_bufsize=max(read_bufsize, 256 * 1024),
        headers={"Accept-Encoding": "identity", "User-Agent": USER_AGENT},
        raise_for_status=False,
        trace_configs=trace_configs,
    )
