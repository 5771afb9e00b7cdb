"""The engine's API token: `login`/`logout`, a key given after start, `engine status`; no leaks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from civitai_tui.engine.client import EngineClient
from civitai_tui.simulator.server import Simulator
from tests.engine_cli import Cli
from tests.helpers import TOKEN

pytestmark = pytest.mark.slow


def keyless(home: Path, sim: Simulator, clis: list[Cli]) -> Cli:
    """A CLI run from a shell without CIVITAI_API_KEY."""
    cli = Cli(home, sim)
    del cli.env["CIVITAI_API_KEY"]
    clis.append(cli)
    return cli


async def status(cli: Cli) -> dict[str, Any]:
    code, out, err = await cli("engine", "status", "--json", check=False)
    assert code in (0, 1), err
    return json.loads(out)


def small_model(sim: Simulator) -> int:
    return next(m.id for m in sim.catalogue.models if not m.mode and m.type == "LORA")


async def add_and_wait(cli: Cli, sim: Simulator, lib: Path) -> dict[str, Any]:
    out = (await cli("add", f"model:{small_model(sim)}", "-d", str(lib), "--json"))[1]
    job = json.loads(out)
    await cli("wait", job["id"], "--timeout", "60", check=False)
    return next(j for j in await cli.jobs() if j["id"] == job["id"])


def assert_nowhere(token: str, home: Path, lib: Path, pid: int, events: list[str]) -> None:
    """Not in any file of the state dir (but its credentials file), the library, argv, events."""
    for path in (*home.rglob("*"), *lib.rglob("*")):
        if path.is_file() and path.name != "credentials":
            assert token.encode() not in path.read_bytes(), path
    assert token.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert events and not [e for e in events if token in e]


@contextlib.asynccontextmanager
async def recorded_events(home: Path) -> Any:
    """Every event-stream message of the engine, as JSON text, while the block runs."""
    seen: list[str] = []

    async def follow() -> None:
        async with EngineClient(home / "engine.sock") as client:
            async for message in client.events():
                seen.append(json.dumps(message))

    task = asyncio.create_task(follow())
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_key_given_after_the_engine_started_is_handed_over(
    sim: Simulator, tmp_path: Path, clis: list[Cli]
) -> None:
    home, lib = tmp_path / "home", tmp_path / "lib"
    bare = keyless(home, sim, clis)
    assert await bare.jobs() == []  # starts the engine without a token
    before = await status(bare)
    assert before["running"] and before["token"] is False and before["token_source"] is None
    with_key = Cli(home, sim)
    async with recorded_events(home) as events:
        job = await add_and_wait(with_key, sim, lib)
    assert job["state"] == "COMPLETED", job
    after = await status(bare)
    assert after["token"] is True and after["token_source"] == "handed over"
    assert after["pid"] == before["pid"]  # the same engine, no restart
    assert_nowhere(TOKEN, home, lib, after["pid"], events)
    await bare("engine", "stop")


async def test_login_stores_the_token_privately_and_a_running_engine_uses_it(
    sim: Simulator, tmp_path: Path, clis: list[Cli]
) -> None:
    home, lib = tmp_path / "home", tmp_path / "lib"
    cli = keyless(home, sim, clis)
    code, _, err = await cli("login", stdin=b"0000000000000000deadbeefdeadbeef\n", check=False)
    assert code == 1 and "not stored" in err and "refused" in err
    assert not (home / "credentials").exists()

    assert await cli.jobs() == []  # an engine without a token is running
    assert (await status(cli))["token"] is False
    code, out, _ = await cli("login", stdin=TOKEN.encode() + b"\n")
    assert "CivitAI accepted it" in out
    stored = home / "credentials"
    assert stored.read_text().strip() == TOKEN
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    found = await status(cli)
    assert found["token"] is True and found["token_source"] == "credentials file"
    assert found["state_dir"] == str(home) and found["version"]

    async with recorded_events(home) as events:
        job = await add_and_wait(cli, sim, lib)
    assert job["state"] == "COMPLETED", job
    assert_nowhere(TOKEN, home, lib, found["pid"], events)

    code, out, _ = await cli("logout")
    assert "removed" in out and not stored.exists()
    assert (await status(cli))["token"] is False
    code, out, _ = await cli("engine", "status")
    assert "API token: none" in out and f"pid {found['pid']}" in out
    await cli("engine", "stop")
    code, out, _ = await cli("engine", "status", check=False)
    assert code == 1 and "no engine is running" in out


async def test_a_token_is_never_taken_over_tcp(sim: Simulator, tmp_path: Path) -> None:
    """The hand-over route answers only on the Unix socket, even with the TCP listener's token."""
    import secrets
    import socket

    import aiohttp

    from civitai_tui.engine.server import start_api
    from tests.helpers import embedded_engine

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    control = secrets.token_urlsafe(32)
    async with embedded_engine(sim, tmp_path / "state", "") as (engine, _, _):
        runner = await start_api(
            engine, tmp_path / "second.sock", tcp=("127.0.0.1", port), token=control
        )
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"http://127.0.0.1:{port}/v1/token",
                    json={"token": "f" * 32},
                    headers={"Authorization": f"Bearer {control}"},
                ) as resp:
                    assert resp.status == 403
                    assert "only accepted on the Unix socket" in (await resp.json())["message"]
                async with http.get(
                    f"http://127.0.0.1:{port}/v1/status",
                    headers={"Authorization": f"Bearer {control}"},
                ) as resp:
                    assert resp.status == 200  # the listener itself answers
        finally:
            await runner.cleanup()
