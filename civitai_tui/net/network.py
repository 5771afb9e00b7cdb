"""The process's network settings: proxy routes and TLS trust, from the config and environment.

``network.proxy``, ``network.no_proxy`` and ``network.ca_bundle`` (``config.toml``)
win over ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``/``NO_PROXY`` (see
:mod:`civitai_tui.net.proxy`) and add to the system's CAs (:mod:`civitai_tui.net.tls`).

The engine and ``get`` :func:`install` one :class:`Network` at start; every
session made afterwards (API, storage, previews) is built on its connector, and
the threaded range streams take the route of the session they serve
(:func:`network_of`), so all requests of a download go the same way. Before
:func:`install`, :func:`current` is the environment's.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from civitai_tui.config import Config
from civitai_tui.net.proxy import ProxyRoutes
from civitai_tui.net.tls import client_context


@dataclass(frozen=True)
class Network:
    """Proxy routes and the CA bundle added to the system's trust."""

    routes: ProxyRoutes = field(default_factory=ProxyRoutes)
    ca_bundle: Path | None = None

    @classmethod
    def from_config(cls, config: Config, environ: Mapping[str, str] | None = None) -> Network:
        environ = os.environ if environ is None else environ
        bundle = config.get("network.ca_bundle")
        return cls(
            ProxyRoutes.from_sources(
                environ, config.get("network.proxy"), config.get("network.no_proxy")
            ),
            Path(bundle).expanduser() if bundle else None,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Network:
        return cls(ProxyRoutes.from_sources(os.environ if environ is None else environ))

    @functools.cached_property
    def tls(self) -> ssl.SSLContext:
        """The verifying client context (made once: loading the system's CAs takes ~50 ms)."""
        return client_context(self.ca_bundle)

    def describe(self) -> dict[str, str]:
        """For status output: the proxy (credentials masked) and the extra CAs."""
        return {
            "proxy": self.routes.describe(),
            "ca_bundle": str(self.ca_bundle) if self.ca_bundle else "system",
        }


_installed: Network | None = None


def install(network: Network) -> Network:
    """Make ``network`` the process's (the engine and ``get`` do this at start)."""
    global _installed
    network.tls  # noqa: B018 - a bad ca_bundle fails here, at start, not mid-download
    _installed = network
    return network


def current() -> Network:
    """The installed network, else the environment's (read once)."""
    global _installed
    if _installed is None:
        _installed = Network.from_env()
    return _installed


def network_of(session: aiohttp.ClientSession) -> Network:
    """The network a session's connections take (a ``RoutedConnector``'s), else :func:`current`."""
    network = getattr(session.connector, "network", None)
    return network if isinstance(network, Network) else current()
