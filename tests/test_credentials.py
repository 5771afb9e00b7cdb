"""Credentials in CIVITAI_BASE_URL are refused and masked; ~/.netrc is never read or sent."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security.redact import mask_text
from civitai_tui.simulator.server import Simulator
from tests.helpers import TOKEN
from tests.loopback import serve_app

PASSWORD = "hunter2-base-url-password"
NETRC_PASSWORD = "netrc-secret-password"


def test_userinfo_is_masked_in_any_text() -> None:
    text = f"cannot reach http://bob:{PASSWORD}@127.0.0.1:9/api (https://{PASSWORD}@h/x)"
    masked = mask_text(text)
    assert PASSWORD not in masked and "http://***@127.0.0.1:9/api" in masked
    assert mask_text(masked) == masked and mask_text("mail me@example.org") == "mail me@example.org"


@pytest.mark.parametrize("key", [None, TOKEN])
def test_a_base_url_with_credentials_is_refused_clearly(key: str | None) -> None:
    with pytest.raises(CivitaiTuiError) as err:
        CivitAIClient(f"https://bob:{PASSWORD}@civitai.com", key)
    assert err.value.kind is FailureKind.BAD_CONFIG and "CIVITAI_API_KEY" in err.value.message
    assert PASSWORD not in err.value.message and "bob" not in err.value.message


@pytest.mark.slow
async def test_get_with_credentials_in_the_base_url_fails_cleanly_and_leaks_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    home = tmp_path / "state"
    base = sim.api_url.replace("http://", f"http://bob:{PASSWORD}@")
    env = {
        **os.environ,
        "CIVITAI_TUI_HOME": str(home),
        "CIVITAI_BASE_URL": base,
        "CIVITAI_API_KEY": TOKEN,
    }
    model = next(m for m in sim.catalogue.models if m.type == "LORA" and not m.mode)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "civitai_tui",
        "get",
        f"model:{model.id}",
        "-d",
        str(tmp_path / "lib"),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = (out + err).decode()
    assert proc.returncode == 2 and "carries credentials" in text, text
    assert "Traceback" not in text and PASSWORD not in text
    for path in home.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A loopback JSON server that records the headers of every request."""
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append({"path": request.path_qs, **dict(request.headers)})
        return web.json_response({"items": [], "metadata": {}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}", seen


@pytest.fixture
def netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ~/.netrc with a login for 127.0.0.1 (and a broken entry for good measure)."""
    home = tmp_path / "user"
    home.mkdir()
    path = home / ".netrc"
    path.write_text(f"machine 127.0.0.1 login bob password {NETRC_PASSWORD}\n")
    path.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NETRC", raising=False)
    return path


@pytest.mark.parametrize("key", [None, TOKEN])
async def test_netrc_is_never_sent_and_never_crashes(
    recorder: tuple[str, list[dict[str, str]]], netrc: Path, key: str | None
) -> None:
    base, seen = recorder
    async with CivitAIClient(base, key) as client:
        assert [m async for m in client.iter_models(limit=1)] == []
    (request,) = seen
    sent = request.get("Authorization")
    assert sent == (f"Bearer {TOKEN}" if key else None)


async def test_proxies_from_the_environment_still_apply(
    recorder: tuple[str, list[dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, seen = recorder
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    async with CivitAIClient("http://api.civitai.example", None, allow_http=True) as client:
        assert [m async for m in client.iter_models(limit=1)] == []
    (request,) = seen
    assert request["Host"] == "api.civitai.example"  # it reached the proxy, not the host
    assert request["path"].startswith("/api/v1/models")
