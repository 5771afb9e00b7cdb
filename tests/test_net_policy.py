"""The URL policy: every host spelling, connect-time address checks, redirects, previews."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given, settings
from hypothesis import strategies as st
from test_download_support import fast_settings, request_for

from civitai_tui.bulk.sidecars import fetch_preview
from civitai_tui.civitai.urls import check_fetch, check_redirect
from civitai_tui.download.downloader import FileDownloader
from civitai_tui.download.request import DirectSource
from civitai_tui.download.session import create_download_session
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import EventBus, RetryScheduled
from civitai_tui.net import policy
from civitai_tui.net.policy import (
    AddressRefused,
    GuardedResolver,
    UrlPolicy,
    checked_addrinfo,
    is_internal_host,
    parse_host,
)
from civitai_tui.simulator.server import Simulator
from tests.loopback import serve_app

BUDGET = settings(max_examples=300, deadline=None)


@pytest.fixture
def public_origin() -> Iterator[UrlPolicy]:
    """The policy of a process whose API origin is public (civitai.com)."""
    before = policy.current()
    try:
        yield policy.install(UrlPolicy.for_origin("https://civitai.com"))
    finally:
        policy.install(before)


# ------------------------------------------------------------------ host spellings


def spellings(value: int) -> list[str]:
    """Ways C's inet_aton accepts to write the IPv4 address ``value``."""
    b = value.to_bytes(4, "big")
    forms = [str(value), hex(value), "0" + oct(value)[2:], ".".join(str(x) for x in b)]
    forms.append(".".join(hex(x) for x in b))
    forms.append(".".join("0" + oct(x)[2:] for x in b))
    forms.append(f"{b[0]}.{int.from_bytes(b[1:], 'big')}")  # a.b24
    forms.append(f"{hex(b[0])}.{b[1]}.{int.from_bytes(b[2:], 'big')}")  # a.b.c16
    return forms


@BUDGET
@given(st.integers(0, 2**32 - 1))
def test_every_ipv4_spelling_is_the_same_address(value: int) -> None:
    expected = ipaddress.IPv4Address(value)
    for form in spellings(value):
        assert parse_host(form) == expected, form
        assert socket.inet_aton(form) == expected.packed, form  # what the C library connects to
        assert is_internal_host(form) == is_internal_host(str(expected))


@BUDGET
@given(st.text(alphabet="0123456789abcdefxX.", max_size=24))
def test_the_parser_agrees_with_the_c_library(text: str) -> None:
    try:
        expected: ipaddress.IPv4Address | None = ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        expected = None
    assert parse_host(text) == expected


@BUDGET
@given(st.ip_addresses(v=6))
def test_ipv6_and_mapped_forms(ip: ipaddress.IPv6Address) -> None:
    assert parse_host(f"[{ip}]") == ip and parse_host(ip.exploded) == ip
    if ip.ipv4_mapped is not None:
        assert is_internal_host(f"[{ip}]") == is_internal_host(str(ip.ipv4_mapped))


@BUDGET
@given(st.ip_addresses(v=4))
def test_mapped_ipv4_is_judged_as_the_ipv4(ip: ipaddress.IPv4Address) -> None:
    assert is_internal_host(f"[::ffff:{ip}]") == is_internal_host(str(ip))


@pytest.mark.parametrize(
    "host",
    [
        "0x7f000001",
        "0x7f.1",
        "2130706433",
        "0177.0.0.1",
        "127.1",
        "0xA9FEA9FE",  # 169.254.169.254, the cloud metadata service
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[fd00:ec2::254]",
        "100.100.100.200",
        "0",
        "[::]",
        "10.1",
    ],
)
def test_internal_addresses_in_disguise(host: str) -> None:
    assert is_internal_host(host)
    with pytest.raises(CivitaiTuiError) as err:
        check_redirect("https://cdn.example/file", f"https://{host}/admin")
    assert err.value.kind is FailureKind.INSECURE_URL


def test_names_and_public_addresses_are_not_literals() -> None:
    for host in ("civitai.com", "1.2.3.4.example", "0x7f000001.example", "08", "1.2.3.4.5"):
        assert parse_host(host) is None and not is_internal_host(host)
    assert not is_internal_host("8.8.8.8") and not is_internal_host("0x08080808")


def test_no_downgrade_from_https() -> None:
    with pytest.raises(CivitaiTuiError) as err:
        check_redirect("https://civitai.com/api/x", "http://cdn.example/file", allow_http=True)
    assert err.value.kind is FailureKind.INSECURE_URL and "downgrade" in err.value.message
    assert check_redirect("http://127.0.0.1:9/a", "http://127.0.0.1:9/b") == "http://127.0.0.1:9/b"


def test_api_urls_naming_internal_literals_are_refused(public_origin: UrlPolicy) -> None:
    with pytest.raises(CivitaiTuiError):
        check_fetch("https://0xA9FEA9FE/latest/meta-data")
    assert check_fetch("https://image.civitai.example/a.png")
    public_origin.trust("https://10.0.0.7/x")  # the user named it
    assert check_fetch("https://10.0.0.7/a.png")


# ------------------------------------------------------------------ at connect time


def test_the_policy_follows_the_origin() -> None:
    assert not UrlPolicy.for_origin("https://civitai.com").allow_internal
    assert UrlPolicy.for_origin("http://127.0.0.1:8787").allow_internal
    assert UrlPolicy.for_origin("http://localhost:8787").allow_internal
    assert UrlPolicy.for_origin("http://192.168.1.4").allow_internal


def test_threaded_streams_resolve_through_the_policy(public_origin: UrlPolicy) -> None:
    with pytest.raises(AddressRefused) as err:
        checked_addrinfo("localhost", 80)
    assert "internal address" in str(err.value)
    with pytest.raises(AddressRefused):
        checked_addrinfo("0x7f000001", 80)
    public_origin.trust("http://localhost/x")
    assert checked_addrinfo("localhost", 80)


@pytest.fixture
async def origin() -> AsyncIterator[tuple[int, list[str]]]:
    """A loopback server: ``/image.png`` redirects to ``/internal-admin``; hits recorded."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        if request.path == "/image.png":
            port = request.url.port
            raise web.HTTPFound(f"http://127.0.0.1:{port}/internal-admin")
        if request.path == "/moved.png":
            raise web.HTTPFound("/image-ok.png")
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"x" * 64, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    async with serve_app(app) as port:
        yield port, hits


async def test_names_resolving_to_internal_addresses_are_refused_at_connect(
    origin: tuple[int, list[str]], public_origin: UrlPolicy
) -> None:
    port, hits = origin
    async with create_download_session() as session:
        for host in ("localhost", "0x7f000001", "0X7F.1"):
            with pytest.raises(aiohttp.ClientConnectorError) as err:
                await session.get(f"http://{host}:{port}/x.png")
            assert isinstance(err.value.os_error, AddressRefused), host
        with pytest.raises(aiohttp.InvalidUrlClientError):  # aiohttp refuses these itself
            await session.get(f"http://127.1:{port}/x.png")
        assert hits == []
        public_origin.trust(f"http://localhost:{port}/x.png")
        async with session.get(f"http://localhost:{port}/x.png") as resp:
            assert resp.status == 200 and hits == ["/x.png"]


class Rebinding(AbstractResolver):
    """A DNS server that answers public first, then loopback (a rebinding attack)."""

    def __init__(self) -> None:
        self.answers = ["93.184.216.34", "127.0.0.1"]

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
        ]

    async def close(self) -> None:
        return None


async def test_dns_rebinding_cannot_slip_past(public_origin: UrlPolicy) -> None:
    guarded = GuardedResolver()
    guarded._inner = Rebinding()  # type: ignore[assignment]
    first = await guarded.resolve("rebind.example", 443)
    assert first[0]["host"] == "93.184.216.34"
    with pytest.raises(AddressRefused):
        await guarded.resolve("rebind.example", 443)


class FakeDNS(AbstractResolver):
    """Test-only DNS: ``cdn.example`` is 127.0.0.1 (stands for a public CDN)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = "127.0.0.1" if host == "cdn.example" else host
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
        ]

    async def close(self) -> None:
        return None


async def test_previews_never_follow_a_redirect_to_an_internal_address(
    origin: tuple[int, list[str]], public_origin: UrlPolicy, tmp_path: Path
) -> None:
    port, hits = origin
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"x")
    connector = aiohttp.TCPConnector(resolver=FakeDNS())
    async with aiohttp.ClientSession(connector=connector) as session:
        url = f"http://cdn.example:{port}/image.png"
        assert await fetch_preview(session, url, model, allow_http=True) is None
        assert hits == ["/image.png"]  # /internal-admin was never asked for
        moved = f"http://cdn.example:{port}/moved.png"  # a same-host redirect is fine
        path = await fetch_preview(session, moved, model, allow_http=True)
        assert path is not None and path.read_bytes().startswith(b"\x89PNG")
    assert not list(tmp_path.glob("*internal*"))


async def test_a_refused_storage_host_fails_the_file_at_once(
    sim: Simulator, public_origin: UrlPolicy, tmp_path: Path
) -> None:
    file = next(sim.catalogue.files())
    url = sim.signed_url(file.id).replace("127.0.0.1", "localhost")
    bus = EventBus()
    retries: list[RetryScheduled] = []
    bus.add_callback(lambda e: retries.append(e) if isinstance(e, RetryScheduled) else None)
    async with create_download_session() as session:
        result = await FileDownloader(session, bus, fast_settings()).download(
            request_for(sim, file, tmp_path, source=DirectSource(url))
        )
    assert result.status == "failed" and result.error is not None
    assert result.error.kind is FailureKind.INSECURE_URL and "internal address" in str(result.error)
    assert retries == [] and list(tmp_path.iterdir()) == []
