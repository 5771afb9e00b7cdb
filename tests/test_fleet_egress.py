"""The egress key of a storage host's shared budget."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from civitai_tui.fleet.egress import SHARED_NAT, classify, egress_of, route_source
from civitai_tui.net.proxy import ProxyRoutes


def test_a_configured_egress_wins() -> None:
    egress = egress_of(" office ", ProxyRoutes(), source=lambda: "203.0.113.9")
    assert egress("storage.example") == "office"


def test_a_public_route_is_its_own_egress_and_a_private_one_the_shared_nat() -> None:
    assert egress_of("", ProxyRoutes(), source=lambda: "8.8.4.4")("h") == "8.8.4.4"
    assert egress_of("", ProxyRoutes(), source=lambda: "192.168.1.20")("h") == SHARED_NAT
    assert egress_of("", ProxyRoutes(), source=lambda: None)("h") == SHARED_NAT


def test_a_proxied_host_is_keyed_by_its_proxy() -> None:
    routes = ProxyRoutes.from_sources({}, "http://user:secret@proxy.lan:3128", "")
    egress = egress_of("", routes, source=lambda: "8.8.4.4")
    assert egress("storage.example") == "proxy:proxy.lan:3128"  # never the credentials


def test_the_route_to_loopback_comes_from_loopback() -> None:
    assert route_source("127.0.0.1") == "127.0.0.1"
    assert classify(route_source("127.0.0.1")) == SHARED_NAT


@given(st.text(max_size=60) | st.ip_addresses().map(str))
def test_classify_takes_any_text(text: str) -> None:
    key = classify(text)
    assert key == SHARED_NAT or ipaddress.ip_address(key).is_global
