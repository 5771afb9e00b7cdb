"""Which proxy a URL goes through: the environment and ``network.proxy``, with curl's rules.

* ``network.proxy`` (config) applies to every scheme, as curl's ``-x`` does;
  otherwise ``https_proxy`` for https URLs, ``http_proxy`` for http URLs, then
  ``all_proxy``. Each name is read in lower case first, then upper case; an
  empty value is unset.
* ``network.no_proxy`` (config), else ``no_proxy``/``NO_PROXY``: a comma list
  of host names (a name also covers its subdomains; a leading dot is ignored),
  IP addresses, CIDR ranges (``10.0.0.0/8``), optional ``:port``, or ``*`` for
  everything. Nothing else is exempt: loopback hosts go through the proxy too
  unless listed, as with curl.
* Proxy URLs: ``http://`` (CONNECT for https targets, absolute-form requests for
  http targets), ``socks4://``, ``socks4a://``, ``socks5://`` (names resolved
  here) and ``socks5h://`` (names resolved by the proxy). No scheme means
  ``http://``; no port means 1080, curl's default. Credentials in the URL
  (``http://user:pass@host:port``) are secrets: registered for masking, never
  shown (:attr:`Proxy.display`).
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import python_socks

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security.redact import MASK, register_secret

SCHEMES = ("http", "socks4", "socks4a", "socks5", "socks5h")
DEFAULT_PORT = 1080
_DEFAULT_PORTS = {"http": 80, "https": 443}
SOCKS_TYPES = {
    "socks4": python_socks.ProxyType.SOCKS4,
    "socks4a": python_socks.ProxyType.SOCKS4,
    "socks5": python_socks.ProxyType.SOCKS5,
    "socks5h": python_socks.ProxyType.SOCKS5,
}
_Socks = TypeVar("_Socks")


@dataclass(frozen=True)
class Proxy:
    """One proxy server, with its credentials (never in ``repr``)."""

    scheme: str
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def is_socks(self) -> bool:
        return self.scheme.startswith("socks")

    @property
    def remote_dns(self) -> bool:
        """The proxy resolves target names (``socks5h``, ``socks4a``)."""
        return self.scheme in ("socks5h", "socks4a")

    @property
    def url(self) -> str:
        """The proxy's URL without credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def display(self) -> str:
        """What logs and status show: the URL, credentials masked."""
        if self.username is None:
            return self.url
        return self.url.replace("://", f"://{MASK}@", 1)

    def socks(self, kind: Callable[..., _Socks], **extra: Any) -> _Socks:
        """This SOCKS server as a python-socks ``Proxy`` (``kind``: its sync or asyncio class)."""
        return kind(
            SOCKS_TYPES[self.scheme],
            self.host,
            self.port,
            self.username,
            self.password,
            rdns=self.remote_dns,
            **extra,
        )

    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value for an HTTP proxy with credentials."""
        if self.username is None:
            return None
        pair = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def parse_proxy(text: str, source: str) -> Proxy:
    """The proxy in ``text``; ``source`` (``HTTPS_PROXY``, ``network.proxy``, or "") names it in
    errors.

    Errors never repeat the text: it may hold a password.
    """
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise _bad(source, "it is not a URL") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise _bad(source, f"the scheme {scheme!r} is not supported")
    if not parts.hostname:
        raise _bad(source, "it names no host")
    if parts.path not in ("", "/") or parts.query:
        raise _bad(source, "a proxy URL has no path")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    for secret in (password, username and f"{username}:{password or ''}"):
        register_secret(secret)
    proxy = Proxy(scheme, parts.hostname, port or DEFAULT_PORT, username, password)
    register_secret((proxy.authorization() or "").removeprefix("Basic "))
    return proxy


def _bad(source: str, why: str) -> CivitaiTuiError:
    return CivitaiTuiError(
        FailureKind.BAD_CONFIG,
        f"{source + ': ' if source else ''}not a usable proxy ({why}); expected "
        f"[scheme://][user:password@]host[:port] with scheme one of {', '.join(SCHEMES)}",
    )


@dataclass(frozen=True)
class _Exemption:
    """One ``NO_PROXY`` entry."""

    host: str = ""  # a name (suffix match) or an IP literal
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None

    def covers(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            ip = _ip(host)
            return ip is not None and ip.version == self.network.version and ip in self.network
        return host == self.host or host.endswith("." + self.host)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _exemption(entry: str) -> _Exemption | None:
    entry = entry.strip().lower()
    port = None
    if entry.startswith("["):  # [v6] or [v6]:port
        addr, _, rest = entry[1:].partition("]")
        entry, port = addr, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    elif entry.count(":") == 1:
        name, _, maybe_port = entry.partition(":")
        if maybe_port.isdigit():
            entry, port = name, int(maybe_port)
    entry = entry.lstrip(".").rstrip(".")
    if not entry:
        return None
    try:
        return _Exemption(network=ipaddress.ip_network(entry, strict=False), port=port)
    except ValueError:
        return _Exemption(host=entry, port=port)


@dataclass(frozen=True)
class NoProxy:
    """A parsed ``NO_PROXY`` list."""

    everything: bool = False
    entries: tuple[_Exemption, ...] = ()

    @classmethod
    def parse(cls, text: str) -> NoProxy:
        items = [item for item in text.replace(" ", ",").split(",") if item.strip()]
        if any(item.strip() == "*" for item in items):
            return cls(everything=True)
        return cls(entries=tuple(e for item in items if (e := _exemption(item)) is not None))

    def covers(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]").rstrip(".")
        return self.everything or any(e.covers(host, port) for e in self.entries)


@dataclass(frozen=True)
class ProxyRoutes:
    """The proxy (or none) for every URL: per scheme, with the exemptions."""

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: NoProxy = NoProxy()

    @classmethod
    def from_sources(
        cls, environ: Mapping[str, str], proxy: str = "", no_proxy: str = ""
    ) -> ProxyRoutes:
        """The routes from the config values (``network.*``, win when set) and ``environ``."""

        def env(name: str) -> tuple[str, str] | None:
            for variant in (name.lower(), name.upper()):
                value = environ.get(variant, "").strip()
                if value:
                    return value, variant
            return None

        if proxy.strip():
            both = parse_proxy(proxy, "network.proxy")
            http = https = both
        else:

            def pick(scheme: str) -> Proxy | None:
                found = env(f"{scheme}_proxy") or env("all_proxy")
                return parse_proxy(*found) if found else None

            http, https = pick("http"), pick("https")
        exempt = no_proxy.strip() or (env("no_proxy") or ("", ""))[0]
        return cls(http=http, https=https, no_proxy=NoProxy.parse(exempt))

    def for_url(self, url: str) -> Proxy | None:
        """The proxy ``url`` goes through, or None for a direct connection."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        proxy = self.https if scheme == "https" else self.http if scheme == "http" else None
        if proxy is None or not parts.hostname:
            return None
        port = parts.port or _DEFAULT_PORTS[scheme]
        return None if self.no_proxy.covers(parts.hostname, port) else proxy

    def is_proxy_host(self, host: str) -> bool:
        """``host`` is the host of a configured proxy."""
        host = host.lower().strip("[]")
        return any(p is not None and p.host.lower() == host for p in (self.http, self.https))

    def describe(self) -> str:
        """One line for status and logs, credentials masked."""
        if self.http is None and self.https is None:
            return "direct (no proxy)"
        if self.http == self.https:
            assert self.http is not None
            shown = self.http.display
        else:
            shown = ", ".join(
                f"{s}: {p.display if p else 'direct'}"
                for s, p in (("https", self.https), ("http", self.http))
            )
        if self.no_proxy.everything:
            return f"{shown} (NO_PROXY=*: unused)"
        return shown + (" (with NO_PROXY exemptions)" if self.no_proxy.entries else "")
