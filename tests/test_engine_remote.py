"""The TCP control listener: token from a file or the environment, Host/Origin checks, roots."""

from __future__ import annotations

import asyncio
import hmac
import os
import socket
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from civitai_tui.config import Config, Environment
from civitai_tui.engine import remote
from civitai_tui.engine.client import EngineClient
from civitai_tui.engine.core import Engine
from civitai_tui.engine.remote import (
    MIN_TOKEN_CHARS,
    TOKEN_ENV,
    load_token,
    new_token,
    token_matches,
    write_new_token,
)
from civitai_tui.engine.server import start_api
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.simulator.server import Simulator
from tests.helpers import TOKEN

SECRET = new_token()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ the token


def test_new_token_is_32_random_bytes_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    token = write_new_token(path)
    assert len(token) >= MIN_TOKEN_CHARS and token != new_token()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_token(path) == token


@pytest.mark.parametrize("weak", ["s3", "a" * 64, "0123456789" * 3])
def test_weak_tokens_are_refused(weak: str, tmp_path: Path) -> None:
    with pytest.raises(CivitaiTuiError) as err:
        load_token(None, {TOKEN_ENV: weak})
    assert err.value.kind is FailureKind.BAD_CONFIG and "too weak" in err.value.message
    assert weak not in err.value.message


def test_token_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(SECRET)
    path.chmod(0o644)
    with pytest.raises(CivitaiTuiError) as err:
        load_token(path)
    assert "chmod 600" in err.value.message and SECRET not in err.value.message
    link = tmp_path / "link"
    link.symlink_to(path)
    path.chmod(0o600)
    with pytest.raises(CivitaiTuiError):  # never through a symlink
        load_token(link)
    assert load_token(None, {TOKEN_ENV: SECRET}) == SECRET
    assert load_token(None, {}) is None


def test_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(remote.hmac, "compare_digest", spy)
    assert token_matches(f"Bearer {SECRET}", SECRET)
    assert not token_matches(f"Bearer {SECRET[:-1]}", SECRET)
    assert len(calls) == 2


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "civitai_tui",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_token_on_the_command_line_is_refused_with_the_way_to_do_it() -> None:
    code, out = await run_cli("engine", "--tcp", "127.0.0.1:1", "--token", SECRET, env=os.environ)
    assert code == 2 and "--token-file" in out and TOKEN_ENV in out


@pytest.mark.slow
async def test_engine_new_token_writes_a_file_and_the_token_stays_off_argv(
    sim: Simulator, tmp_path: Path
) -> None:
    port, path = free_port(), tmp_path / "engine.token"
    home = tmp_path / "home"
    env = {**os.environ, "CIVITAI_TUI_HOME": str(home), "CIVITAI_BASE_URL": sim.api_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "civitai_tui",
        "engine",
        "--tcp",
        f"127.0.0.1:{port}",
        "--token-file",
        str(path),
        "--new-token",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/status"
        deadline = asyncio.get_running_loop().time() + 30
        async with aiohttp.ClientSession() as http:
            while True:
                assert asyncio.get_running_loop().time() < deadline, "engine never answered"
                try:
                    token = path.read_text().strip()
                    headers = {"Authorization": f"Bearer {token}"}
                    async with http.get(url, headers=headers) as resp:
                        assert resp.status == 200
                        break
                except (OSError, aiohttp.ClientConnectionError):
                    await asyncio.sleep(0.05)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(token) >= MIN_TOKEN_CHARS
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            assert token.encode() not in cmdline
            shutdown = f"http://127.0.0.1:{port}/v1/shutdown"
            async with http.post(shutdown, headers=headers) as resp:
                assert resp.status == 200
        await asyncio.wait_for(proc.wait(), 30)
        assert token not in (await proc.stderr.read()).decode()  # type: ignore[union-attr]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ------------------------------------------------------------------ the listener


class Remote:
    """An engine with a TCP listener, and helpers to call it as a remote client would."""

    def __init__(self, engine: Engine, port: int, socket_path: Path, home: Path) -> None:
        self.engine, self.port, self.socket, self.home = engine, port, socket_path, home
        self.base = f"http://127.0.0.1:{port}"

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = SECRET,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.base + path, json=body, headers=sent) as resp,
        ):
            return resp.status, await resp.json(content_type=None)


@pytest.fixture
async def tcp_engine(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Remote]:
    user_home = tmp_path / "user"
    (user_home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(user_home))
    state = tmp_path / "state"
    state.mkdir()
    engine = Engine(
        state,
        config=Config.load(state / "config.toml", environ={}),
        environment=Environment(sim.api_url, TOKEN),
    )
    await engine.start()
    port = free_port()
    runner = await start_api(engine, state / "e.sock", tcp=("127.0.0.1", port), token=SECRET)
    try:
        yield Remote(engine, port, state / "e.sock", user_home)
    finally:
        await runner.cleanup()
        await engine.stop()


async def test_tcp_listener_refuses_weak_or_missing_tokens(sim: Simulator, tmp_path: Path) -> None:
    engine = Engine(
        tmp_path,
        config=Config.load(tmp_path / "config.toml", environ={}),
        environment=Environment(sim.api_url, TOKEN),
    )
    for token in (None, "s3"):
        with pytest.raises(CivitaiTuiError) as err:
            await start_api(engine, tmp_path / "e.sock", tcp=("127.0.0.1", 1), token=token)
        assert err.value.kind is FailureKind.BAD_CONFIG and "--token-file" in err.value.message


async def test_every_tcp_request_needs_the_token(tcp_engine: Remote) -> None:
    assert (await tcp_engine.call("GET", "/v1/status", token=None))[0] == 401
    assert (await tcp_engine.call("GET", "/v1/status", token=SECRET[:-1]))[0] == 401
    status, body = await tcp_engine.call("GET", "/v1/status")
    assert status == 200 and "pid" in body
    async with EngineClient(tcp_engine.socket) as client:  # the socket needs no token
        assert "version" in await client.status()


async def test_rebinding_host_names_and_browser_origins_are_refused(tcp_engine: Remote) -> None:
    evil = {"Host": f"attacker.example:{tcp_engine.port}"}
    status, body = await tcp_engine.call("GET", "/v1/status", headers=evil)
    assert status == 403 and body["error"] == "bad_host" and body["message"]
    for host in (f"localhost:{tcp_engine.port}", f"127.0.0.1:{tcp_engine.port}"):
        assert (await tcp_engine.call("GET", "/v1/status", headers={"Host": host}))[0] == 200
    page = {"Origin": "https://attacker.example"}
    status, body = await tcp_engine.call("GET", "/v1/status", headers=page)
    assert status == 403 and body["error"] == "browser_origin"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(
                tcp_engine.base + "/v1/events",
                headers={"Authorization": f"Bearer {SECRET}", **page},
            )
        assert err.value.status == 403
        ws = await http.ws_connect(
            tcp_engine.base + "/v1/events", headers={"Authorization": f"Bearer {SECRET}"}
        )
        assert (await ws.receive_json(timeout=10))["type"] == "snapshot"
        await ws.close()


async def test_tcp_jobs_cannot_write_outside_the_allowed_roots(
    tcp_engine: Remote, sim: Simulator, tmp_path: Path
) -> None:
    model = next(m for m in sim.catalogue.models if m.type == "LORA" and not m.mode)
    target = [f"{sim.storage_url}/files/authorized_keys"]
    ssh = tcp_engine.home / ".ssh"
    for dest in (str(ssh), str(tmp_path / "elsewhere"), "/etc", "~/.ssh", f"{ssh}/../../x"):
        for route in ("/v1/jobs", "/v1/preview"):
            status, body = await tcp_engine.call(
                "POST", route, {"targets": target, "options": {"dest": dest}}
            )
            assert status == 403 and body["error"] == "forbidden", (route, dest, body)
            assert "allowed roots" in body["message"] or "hidden" in body["message"]
    assert list(ssh.iterdir()) == [] and tcp_engine.engine.manager.jobs() == []
    status, _ = await tcp_engine.call(
        "POST",
        "/v1/preview",
        {"targets": [f"model:{model.id}"], "options": {"dest": str(tcp_engine.home / "lib")}},
    )
    assert status == 200
    status, body = await tcp_engine.call(
        "POST", "/v1/reports", {"format": "json", "output": str(tcp_engine.home / ".bashrc")}
    )
    assert status == 403 and not (tcp_engine.home / ".bashrc").exists()
    status, body = await tcp_engine.call(
        "POST", "/v1/reports", {"format": "json", "output": str(tcp_engine.home / "r.json")}
    )
    assert status == 200 and (tcp_engine.home / "r.json").is_file()


async def test_tcp_clients_cannot_widen_the_roots(tcp_engine: Remote, tmp_path: Path) -> None:
    status, body = await tcp_engine.call("PUT", "/v1/config/engine.allowed_roots", {"value": "/"})
    assert status == 403 and body["message"]
    status, _ = await tcp_engine.call("PUT", "/v1/config/bulk.dest", {"value": "/etc"})
    assert status == 403
    config = tcp_engine.engine.config
    assert config.get("engine.allowed_roots") == "" and config.get("bulk.dest") == ""
    inside = str(tcp_engine.home / "models")
    assert (await tcp_engine.call("PUT", "/v1/config/bulk.dest", {"value": inside}))[0] == 200
    async with EngineClient(tcp_engine.socket) as client:  # the owner may, locally
        await client.set_config("engine.allowed_roots", str(tmp_path / "shared"))
    status, _ = await tcp_engine.call(
        "POST",
        "/v1/reports",
        {"format": "json", "output": str(tmp_path / "shared" / "r.json")},
    )
    assert status == 200
    status, _ = await tcp_engine.call(
        "POST", "/v1/reports", {"format": "json", "output": str(tcp_engine.home / "r.json")}
    )
    assert status == 403  # an explicit list replaces the defaults
