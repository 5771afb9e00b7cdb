"""An aiohttp connector that sends every request the way :class:`ProxyRoutes` says.

Every session of the process (API, storage, previews) is built on it, so a
request, and each redirect it follows, is routed by its own URL: direct, through
an HTTP proxy (aiohttp's own CONNECT tunnel for https, absolute-form requests for
http, with ``Proxy-Authorization`` when the proxy URL has credentials), or
through a SOCKS proxy (python-socks opens the tunnel; TLS is then started on it
with the same verifying context as a direct connection). Direct connections
resolve through the URL policy's :class:`~civitai_tui.net.policy.GuardedResolver`;
through a proxy, the proxy resolves and reaches the target (the policy's URL
checks still apply to every URL and redirect).

It hooks two ``TCPConnector`` methods of the pinned aiohttp (3.14): ``connect``
(the proxy is set on the request before its pool key is taken, so pooled
connections to the proxy are reused correctly) and ``_create_connection``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import python_socks
from aiohttp.abc import ResolveResult
from aiohttp.helpers import is_ip_address
from aiohttp.resolver import DefaultResolver
from python_socks.async_.asyncio import Proxy as SocksProxy
from yarl import URL

from civitai_tui.net.network import Network, current
from civitai_tui.net.policy import GuardedResolver
from civitai_tui.net.proxy import Proxy, ProxyRoutes

if TYPE_CHECKING:
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.tracing import Trace

#: What python-socks raises when the proxy cannot be reached or refuses the target.
SOCKS_ERRORS = (
    python_socks.ProxyError,
    python_socks.ProxyConnectionError,
    python_socks.ProxyTimeoutError,
)


class ProxyFailure(aiohttp.ClientConnectionError):
    """A SOCKS proxy could not be reached, or refused the connection to the target."""

    def __init__(self, proxy: Proxy, target: str, reason: str) -> None:
        super().__init__(f"the proxy {proxy.display} failed to connect to {target} ({reason})")
        self.proxy = proxy
        self.target = target
        self.reason = reason


class RoutedConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that routes each request by its URL (see the module doc)."""

    def __init__(self, network: Network | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("resolver", GuardedResolver())
        super().__init__(**kwargs)
        self._network = network
        self._proxy_resolver = DefaultResolver()

    @property
    def network(self) -> Network:
        """The routes and trust of new connections: the one given, else the installed one
        (so ``config set network.*`` reaches running sessions)."""
        return self._network or current()

    @property
    def routes(self) -> ProxyRoutes:
        return self.network.routes

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        """Targets through the URL policy's guard (``net.policy``); a proxy's own name is
        the user's choice, resolved unguarded (a corporate proxy is usually internal)."""
        if self.routes.is_proxy_host(host) and not is_ip_address(host):
            return await self._proxy_resolver.resolve(host, port, family=self._family)
        return await super()._resolve_host(host, port, traces)

    def _get_ssl_context(self, req: ClientRequest) -> ssl.SSLContext | None:
        """Always the verifying context of :attr:`network` for https (never unverified)."""
        return self.network.tls if req.is_ssl() else None

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.connector.Connection:
        if req.proxy is None:
            proxy = self.routes.for_url(str(req.url))
            if proxy is not None and not proxy.is_socks:
                auth = proxy.authorization()
                headers = {"Proxy-Authorization": auth} if auth else None
                req.update_proxy(URL(proxy.url), None, headers)  # CONNECT carries these
                if auth and not req.is_ssl():  # absolute-form: the request itself does
                    req.headers["Proxy-Authorization"] = auth
        return await super().connect(req, traces, timeout)

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        proxy = None if req.proxy else self.routes.for_url(str(req.url))
        if proxy is None or not proxy.is_socks:
            return await super()._create_connection(req, traces, timeout)
        return await self._through_socks(req, proxy, timeout)

    async def _through_socks(
        self, req: ClientRequest, proxy: Proxy, timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        host, port = req.host, req.port
        assert port is not None
        context = self._get_ssl_context(req)
        target = f"{host}:{port}"
        socks = proxy.socks(SocksProxy, loop=self._loop)
        try:
            async with asyncio.timeout(timeout.sock_connect):
                sock = await socks.connect(host, port)
                _, protocol = await self._loop.create_connection(
                    self._factory,
                    sock=sock,
                    ssl=context,
                    server_hostname=host.rstrip(".") if context else None,
                )
        except ssl.SSLCertVerificationError as exc:
            raise aiohttp.ClientConnectorCertificateError(req.connection_key, exc) from exc
        except SOCKS_ERRORS as exc:
            raise ProxyFailure(proxy, target, str(exc) or type(exc).__name__) from exc
        except OSError as exc:
            raise aiohttp.ClientConnectorError(req.connection_key, exc) from exc
        return protocol
