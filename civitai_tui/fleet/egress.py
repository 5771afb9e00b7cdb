"""Which address a storage server sees this engine come from: the egress key of its budget.

A storage server counts connections per client address, so engines that reach
it from one address (machines behind one NAT, or one proxy) must share one
budget, and engines with addresses of their own must not be held to one. The
egress of a host is, in order:

1. ``fleet.egress`` when set: any name; engines that give the same one share
   budgets (set it to the public address, or a site name like ``office``, on
   every machine behind one NAT);
2. ``proxy:<host:port>`` when requests to the host go through a proxy (the
   server sees the proxy);
3. this machine's own address on its default route when it is a public one (no
   NAT in between; found with a UDP ``connect``, which sends no packet);
4. ``nat`` otherwise: a private address is taken to be behind the one NAT the
   whole fleet shares. That is the safe guess (never more connections than one
   address may have); machines behind different NATs set ``fleet.egress``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from civitai_tui.net.proxy import ProxyRoutes

#: Where the route is asked for (TEST-NET-2: documentation only; no packet is sent).
ROUTE_PROBE = "198.51.100.1"
SHARED_NAT = "nat"


def route_source(target: str = ROUTE_PROBE) -> str | None:
    """The local address the kernel would send from towards ``target`` (None: no route)."""
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((target, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return None


def classify(source: str | None) -> str:
    """A public ``source`` is its own egress; anything else is the shared NAT."""
    if source is None:
        return SHARED_NAT
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return SHARED_NAT
    return str(address) if address.is_global else SHARED_NAT


def egress_of(
    configured: str, routes: ProxyRoutes, source: Callable[[], str | None] = route_source
) -> Callable[[str], str]:
    """The egress of each storage host (see the module's rules), the route asked once."""
    if configured.strip():
        name = configured.strip()
        return lambda _host: name
    own = classify(source())

    def egress(host: str) -> str:
        proxy = routes.for_url(f"https://{host}/")
        return f"proxy:{proxy.host}:{proxy.port}" if proxy is not None else own

    return egress
