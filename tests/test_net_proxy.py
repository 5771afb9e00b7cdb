"""Proxies: curl's rules for the environment and config, and real requests through a real proxy.

The proxy is ``civitai_tui.simulator.proxy`` in its own process; it counts what it
carried by kind (``forward`` absolute-form, ``connect`` tunnel, ``socks``) and target.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from test_cli_get import ordinary_models, run_cli
from test_download_support import downloader, fast_settings, pick, request_for

from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.config import Config
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.net.network import Network, install
from civitai_tui.net.policy import UrlPolicy
from civitai_tui.net.proxy import NoProxy, ProxyRoutes, parse_proxy
from civitai_tui.simulator.server import Simulator
from tests.engine_cli import Cli, engine_home
from tests.helpers import TOKEN, embedded_engine, forward_proxy

MiB = 1 << 20
SECRET = "S3cret-Pa55word"


# ------------------------------------------------------------------ rules


@pytest.mark.parametrize(
    ("environ", "url", "expected"),
    [
        ({"HTTPS_PROXY": "http://p:3128"}, "https://civitai.com/x", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128"}, "http://civitai.com/x", None),
        ({"http_proxy": "p:8080"}, "http://civitai.com/x", "http://p:8080"),
        ({"ALL_PROXY": "socks5h://s"}, "https://civitai.com/x", "socks5h://s:1080"),
        ({"ALL_PROXY": "socks5://s:9", "https_proxy": "http://p:1"}, "https://a/", "http://p:1"),
        (
            {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"},
            "https://a/",
            "http://lower:1",
        ),
        ({"HTTPS_PROXY": ""}, "https://civitai.com/x", None),
        # Loopback is not exempt unless NO_PROXY says so (curl's rule).
        ({"HTTPS_PROXY": "http://p:1"}, "https://127.0.0.1:8443/f", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "127.0.0.1"}, "https://127.0.0.1:8443/f", None),
    ],
)
def test_environment_picks_the_proxy_like_curl(
    environ: dict[str, str], url: str, expected: str | None
) -> None:
    proxy = ProxyRoutes.from_sources(environ).for_url(url)
    assert (proxy.url if proxy else None) == expected


def test_config_proxy_wins_over_the_environment_and_env_no_proxy_still_applies() -> None:
    environ = {"HTTPS_PROXY": "http://env:1", "NO_PROXY": "internal.example"}
    routes = ProxyRoutes.from_sources(environ, proxy="socks5h://cfg:2")
    assert routes.for_url("http://civitai.com/").url == "socks5h://cfg:2"  # type: ignore[union-attr]
    assert routes.for_url("https://a.internal.example/") is None
    assert ProxyRoutes.from_sources(environ, "socks5h://cfg:2", "*").for_url("https://x/") is None


@pytest.mark.parametrize(
    ("entry", "host", "port", "covered"),
    [
        ("*", "anything.example", 443, True),
        ("example.com", "example.com", 443, True),
        ("example.com", "cdn.example.com", 443, True),
        (".example.com", "example.com", 443, True),
        ("example.com", "badexample.com", 443, False),
        ("example.com", "example.com.", 443, True),
        ("EXAMPLE.com", "Cdn.Example.COM", 443, True),
        ("10.0.0.0/8", "10.1.2.3", 80, True),
        ("10.0.0.0/8", "11.1.2.3", 80, False),
        ("127.0.0.1", "127.0.0.1", 9, True),
        ("127.0.0.1:8443", "127.0.0.1", 8443, True),
        ("127.0.0.1:8443", "127.0.0.1", 9000, False),
        ("[::1]:8443", "::1", 8443, True),
        ("::1", "[::1]", 1, True),
        ("localhost", "127.0.0.1", 1, False),  # names are not resolved
        ("a.com, b.com ,,", "b.com", 1, True),
    ],
)
def test_no_proxy_matching(entry: str, host: str, port: int, covered: bool) -> None:
    assert NoProxy.parse(entry).covers(host, port) is covered


@pytest.mark.parametrize(
    "text", ["ftp://p:21", "https://p:443", "http://:8080", "http://p:99999", "http://p/x"]
)
def test_unusable_proxy_urls_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(CivitaiTuiError) as caught:
        parse_proxy(text.replace("://", f"://u:{SECRET}@"), "HTTPS_PROXY")
    assert caught.value.kind is FailureKind.BAD_CONFIG
    assert "HTTPS_PROXY" in caught.value.message and SECRET not in caught.value.message


def test_credentials_are_masked_in_display_repr_and_config(tmp_path: Path) -> None:
    proxy = parse_proxy(f"http://user:{SECRET}@proxy.corp:3128", "network.proxy")
    assert proxy.display == "http://***@proxy.corp:3128"
    assert SECRET not in repr(proxy) and SECRET not in ProxyRoutes(proxy, proxy).describe()
    pair = base64.b64decode(proxy.authorization().removeprefix("Basic ")).decode()  # type: ignore[union-attr]
    assert pair == f"user:{SECRET}"
    config = Config.load(tmp_path / "config.toml", environ={})
    config.set("network.proxy", f"http://user:{SECRET}@proxy.corp:3128")
    assert config.shown()["network.proxy"] == "http://***@proxy.corp:3128"
    with pytest.raises(CivitaiTuiError, match=r"network\.proxy"):
        config.set("network.proxy", "gopher://x")


# ------------------------------------------------------- through a real proxy


async def _api_and_storage(sim: Simulator, dest: Path) -> None:
    """One API call and one multi-connection file download (threaded ranges included)."""
    async with CivitAIClient(sim.api_url, TOKEN, allow_http=True) as client:
        await client.get_model(ordinary_models(sim, 1)[0])
    file = pick(sim, 3 * MiB, 16 * MiB)
    async with downloader(fast_settings(connections=4, min_split=256 * 1024)) as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert result.status == "completed" and result.verified, result.error


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


@pytest.mark.parametrize("scheme", ["http", "socks5", "socks5h"])
async def test_api_and_storage_go_through_the_proxy_over_http(
    sim: Simulator, tmp_path: Path, scheme: str
) -> None:
    async with forward_proxy() as proxy:
        install(Network(ProxyRoutes.from_sources({"ALL_PROXY": proxy.url(scheme)})))
        await _api_and_storage(sim, tmp_path)
        carried = await proxy.carried()
    kind = "forward" if scheme == "http" else "socks"
    assert carried.get(f"{kind} {_target(sim.api_url)}", 0) >= 1
    # The first range (aiohttp) and the follow-up ranges (threads) all went through it.
    assert carried.get(f"{kind} {_target(sim.storage_url)}", 0) >= 3
    assert set(carried) == {f"{kind} {_target(sim.api_url)}", f"{kind} {_target(sim.storage_url)}"}


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
async def test_https_goes_through_a_tunnel_with_the_private_ca_trusted(
    tls_sim: Simulator, tmp_path: Path, scheme: str
) -> None:
    assert tls_sim.ca is not None
    async with forward_proxy() as proxy:
        routes = ProxyRoutes.from_sources({"HTTPS_PROXY": proxy.url(scheme)})
        install(Network(routes, tls_sim.ca.ca_file))
        await _api_and_storage(tls_sim, tmp_path)
        carried = await proxy.carried()
    kind = "connect" if scheme == "http" else "socks"
    assert carried.get(f"{kind} {_target(tls_sim.api_url)}", 0) >= 1
    assert carried.get(f"{kind} {_target(tls_sim.storage_url)}", 0) >= 3


async def test_no_proxy_sends_the_listed_host_direct(tls_sim: Simulator, tmp_path: Path) -> None:
    assert tls_sim.ca is not None
    async with forward_proxy() as proxy:
        storage = _target(tls_sim.storage_url)
        routes = ProxyRoutes.from_sources({"https_proxy": proxy.url(), "no_proxy": storage})
        install(Network(routes, tls_sim.ca.ca_file))
        await _api_and_storage(tls_sim, tmp_path)
        carried = await proxy.carried()
    assert carried == {
        f"connect {_target(tls_sim.api_url)}": carried[f"connect {_target(tls_sim.api_url)}"]
    }


@pytest.mark.parametrize(
    ("mode", "scheme", "words"),
    [
        ("refuse", "http", "refused the tunnel to 127.0.0.1:{port} (HTTP 403"),
        ("refuse", "socks5", "through the proxy socks5://127.0.0.1:{proxy}"),
        ("drop", "http", "through the proxy http://127.0.0.1:{proxy}"),
    ],
)
async def test_a_proxy_that_refuses_or_drops_the_tunnel_gives_a_clear_error(
    tls_sim: Simulator, tmp_path: Path, mode: str, scheme: str, words: str
) -> None:
    """The API is reached directly (NO_PROXY); storage requests meet the bad proxy."""
    assert tls_sim.ca is not None
    file = pick(tls_sim, 1 * MiB, 4 * MiB)
    async with forward_proxy("--mode", mode) as proxy:
        environ = {"HTTPS_PROXY": proxy.url(scheme), "NO_PROXY": _target(tls_sim.api_url)}
        install(Network(ProxyRoutes.from_sources(environ), tls_sim.ca.ca_file))
        async with downloader(fast_settings()) as dl:
            result = await dl.download(request_for(tls_sim, file, tmp_path))
    assert result.status == "failed" and result.error is not None
    port = urlsplit(tls_sim.storage_url).port
    assert words.format(port=port, proxy=proxy.port) in result.error.message


async def test_proxy_credentials_are_sent_but_never_shown(sim: Simulator, tmp_path: Path) -> None:
    """``get --json`` through a proxy that wants credentials: right ones work, wrong ones
    fail with a 407 message; the password is in no output, log or database."""
    home = tmp_path / "home"
    async with forward_proxy("--auth", f"user:{SECRET}") as proxy:
        for password, ok in ((SECRET, True), ("Wrong-" + SECRET[::-1], False)):
            env = {"HTTP_PROXY": proxy.url(auth=f"user:{password}")}
            code, summary, err = await run_cli(
                home,
                sim,
                "get",
                f"model:{ordinary_models(sim, 1)[0]}",
                "--dest",
                str(tmp_path / "m"),
                "--json",
                env=env,
            )
            assert (code == 0) is ok, (summary, err)
            shown = json.dumps(summary) + err
            assert password not in shown
            if not ok:
                assert "wants credentials" in shown or "HTTP 407" in shown
        carried = await proxy.carried()
    assert carried.get(f"forward {_target(sim.storage_url)}", 0) >= 1
    everything = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    for secret in (SECRET, base64.b64encode(f"user:{SECRET}".encode()).decode()):
        assert secret.encode() not in everything


async def test_engine_status_and_config_show_the_proxy_without_credentials(
    sim: Simulator, tmp_path: Path
) -> None:
    config = f'[network]\nproxy = "http://user:{SECRET}@127.0.0.1:3128"\nno_proxy = "*"\n'
    async with embedded_engine(sim, tmp_path / "home", config) as (_, client, _):
        status = await client.status()
        settings = await client.config()
    assert status["network"]["proxy"].startswith("http://***@127.0.0.1:3128")
    assert settings["network.proxy"] == "http://***@127.0.0.1:3128"
    assert SECRET not in json.dumps(status) + json.dumps(settings)


@pytest.mark.slow
async def test_the_engine_status_command_names_the_proxy_in_use_masked(
    sim: Simulator, tmp_path: Path, clis: list[Cli]
) -> None:
    """`engine status` (text and --json) of a real engine subprocess shows which proxy it uses."""
    config = f'[network]\nproxy = "http://user:{SECRET}@127.0.0.1:3128"\nno_proxy = "*"\n'
    cli, _, _ = engine_home(sim, tmp_path, clis, config)
    assert await cli.jobs() == []  # starts the engine
    _, text, err = await cli("engine", "status")
    _, as_json, _ = await cli("engine", "status", "--json")
    assert "proxy:     http://***@127.0.0.1:3128" in text, text
    assert json.loads(as_json)["network"]["proxy"].startswith("http://***@127.0.0.1:3128")
    assert SECRET not in text + as_json + err


async def test_a_proxy_on_an_internal_address_is_reached_under_a_public_policy(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URL policy guards targets; the proxy (a name resolving to loopback here, as a
    corporate proxy resolves to a private address) is the user's choice, never refused."""
    monkeypatch.setattr("civitai_tui.net.policy._current", UrlPolicy(allow_internal=False))
    async with forward_proxy() as proxy:
        install(Network(ProxyRoutes.from_sources({"http_proxy": f"localhost:{proxy.port}"})))
        file = pick(sim, 3 * MiB, 16 * MiB)
        async with downloader(fast_settings(connections=4, min_split=256 * 1024)) as dl:
            result = await dl.download(request_for(sim, file, tmp_path))
        carried = await proxy.carried()
    assert result.status == "completed" and result.verified, result.error
    assert carried.get(f"forward {_target(sim.storage_url)}", 0) >= 3
