"""One URL policy for every outbound request: API, storage, previews and their redirects.

What it refuses, and where:

* **host spellings** (:func:`parse_host`): a host is read the way the C resolver
  will connect to it, so ``0x7f000001``, ``2130706433``, ``0x7f.1``, ``0177.0.0.1``,
  ``127.1``, ``[::ffff:127.0.0.1]`` are all 127.0.0.1 for the URL checks of
  :mod:`civitai_tui.civitai.urls` (redirects from a public host to an internal
  address are refused, https→http downgrades too);
* **names, at connect time**: :class:`GuardedResolver` (the resolver of every
  aiohttp session) and :func:`checked_addrinfo` (the threaded range streams)
  check *every* address a name resolves to, on each connection, so a DNS answer
  that changes between the URL check and the connect (rebinding) cannot reach an
  internal address.

"Internal" is anything not globally routable: loopback, private (RFC 1918, ULA),
link-local (169.254.0.0/16 with the cloud metadata service, fe80::/10), shared
(100.64/10), reserved, unspecified, multicast, and IPv4-mapped/compatible forms
of these. Internal addresses are refused unless the policy allows them: when the
API origin is itself internal (a local mirror, the simulator), or for a host the
user named in a URL target (:meth:`UrlPolicy.trust`): the user asked for it.

The process has one policy (:func:`current`), installed by the engine and by
``get`` from ``CIVITAI_BASE_URL`` (:func:`install`).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from civitai_tui.errors import CivitaiTuiError, FailureKind

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_LOOPBACK_NAMES = ("localhost", "localhost.")


def _ipv4_part(text: str) -> int:
    """One part of a dotted IPv4 in C ``inet_aton`` syntax: decimal, 0x hex or 0 octal."""
    if text[:2].lower() == "0x":
        digits, base = text[2:], 16
    elif len(text) > 1 and text.startswith("0"):
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    if not digits.isascii() or not digits.isalnum():
        raise ValueError(text)
    return int(digits, base)


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """``host`` as ``inet_aton`` reads it (1 to 4 parts, the last filling the rest)."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or any(p == "" for p in parts):
        return None
    try:
        numbers = [_ipv4_part(p) for p in parts]
    except ValueError:
        return None
    *head, last = numbers
    if any(n > 0xFF for n in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    value = last
    for i, n in enumerate(head):
        value |= n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def parse_host(host: str) -> IPAddress | None:
    """The address ``host`` names if it is an IP literal in any spelling, else None (a name)."""
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # an IPv6 zone id
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    return _inet_aton(text) if text else None


def unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped (``::ffff:a.b.c.d``) or -compatible IPv6 one."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if int(ip) >> 32 == 0 and int(ip) > 1:  # ::a.b.c.d (deprecated, still routed)
            return ipaddress.IPv4Address(int(ip))
    return ip


def is_internal_address(ip: IPAddress) -> bool:
    """True for every address that is not globally routable unicast."""
    ip = unwrap(ip)
    return not ip.is_global or ip.is_multicast


def _literal(host: str) -> IPAddress | None:
    """:func:`parse_host`, also for a literal with a trailing dot (some resolvers take it)."""
    return parse_host(host) or parse_host(host.strip().rstrip("."))


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` names and loopback literals in any spelling."""
    name = host.strip().lower().strip("[]")
    if name in _LOOPBACK_NAMES or name.rstrip(".").endswith(".localhost"):
        return True
    ip = _literal(name)
    return ip is not None and unwrap(ip).is_loopback


def is_internal_host(host: str) -> bool:
    """True for loopback names and for literals of internal addresses (names: see resolver)."""
    if is_loopback_host(host):
        return True
    ip = _literal(host)
    return ip is not None and is_internal_address(ip)


class AddressRefused(OSError):
    """A host resolved to an internal address that this request may not reach."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(
            f"{host} resolves to the internal address {address}; refused because the URL came "
            "from a public server (a private, loopback, link-local or metadata address is only "
            "reached when CIVITAI_BASE_URL or your own URL target names it)"
        )
        self.host = host
        self.address = address


def refusal(exc: BaseException) -> CivitaiTuiError | None:
    """The (final, not retried) INSECURE_URL error when ``exc`` is or wraps a refusal."""
    cause = getattr(exc, "os_error", None) or exc
    if isinstance(cause, AddressRefused):
        return CivitaiTuiError(FailureKind.INSECURE_URL, str(cause))
    return None


@dataclass
class UrlPolicy:
    """Which internal addresses outbound connections may reach."""

    #: The API origin is itself internal: everything it points at may be too.
    allow_internal: bool = False
    #: Host names the user typed in URL targets (lower case): theirs to reach.
    trusted: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def for_origin(cls, base_url: str) -> UrlPolicy:
        """The policy for an API origin: internal addresses only if the origin is internal."""
        return cls(allow_internal=is_internal_host(urlsplit(base_url).hostname or ""))

    def trust(self, url: str) -> None:
        """The user named ``url``: its host may be internal."""
        host = (urlsplit(url).hostname or "").lower()
        if host:
            with self._lock:
                self.trusted.add(host.rstrip("."))

    def may_reach(self, host: str, address: str) -> bool:
        """True when ``host`` may be reached at ``address``."""
        if self.allow_internal:
            return True
        ip = parse_host(address)
        if ip is None or not is_internal_address(ip):
            return True
        with self._lock:
            return host.lower().rstrip(".") in self.trusted

    def check(self, host: str, addresses: list[str]) -> None:
        """Raise :class:`AddressRefused` unless every address of ``host`` may be reached."""
        for address in addresses:
            if not self.may_reach(host, address):
                raise AddressRefused(host, address)


_current = UrlPolicy(allow_internal=True)  # until install(): tests and tools on loopback


def install(policy: UrlPolicy) -> UrlPolicy:
    """Make ``policy`` the process's policy (the engine and ``get`` call this at start)."""
    global _current
    _current = policy
    return policy


def current() -> UrlPolicy:
    return _current


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver with every answer checked against the policy in force."""

    def __init__(self, policy: UrlPolicy | None = None) -> None:
        self._inner = DefaultResolver()
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        (self._policy or current()).check(host, [a["host"] for a in answers])
        return answers

    async def close(self) -> None:
        await self._inner.close()


def checked_addrinfo(host: str, port: int, policy: UrlPolicy | None = None) -> list[Any]:
    """``socket.getaddrinfo`` for a TCP connection, refused like :class:`GuardedResolver`."""
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    (policy or current()).check(host, [info[4][0] for info in infos])
    return infos
