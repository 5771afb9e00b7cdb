"""The engine process for real: stop with clients attached, `wait`'s status, stored links."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
import time
from pathlib import Path

import pytest

from civitai_tui.download.control import ControlState, load_control
from civitai_tui.engine.client import EngineClient, EngineStopped
from civitai_tui.simulator.server import Simulator
from tests.engine_cli import Cli, engine_home, gone, until

pytestmark = pytest.mark.slow

SLOW = 200_000  # bytes/s per connection: the large file lasts minutes


async def spawn(cli: Cli, *args: str) -> asyncio.subprocess.Process:
    """``civitai-tui ARGS`` running in the background, its output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "civitai_tui",
        *args,
        env=cli.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def on_a_terminal(cli: Cli, *args: str) -> tuple[int, str]:
    """Run ``civitai-tui ARGS`` with stderr on a pseudo-terminal: its status and what it drew."""
    primary, secondary = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "civitai_tui",
        *args,
        env={**cli.env, "COLUMNS": "120", "TERM": "xterm"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=secondary,
    )
    os.close(secondary)
    drawn = bytearray()
    loop = asyncio.get_running_loop()
    while True:
        try:
            chunk = await loop.run_in_executor(None, os.read, primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(primary)
    return await proc.wait(), drawn.decode(errors="replace")


async def slow_job(sim: Simulator, cli: Cli, lib: Path) -> str:
    large = sim.catalogue.specials.large
    sim.faults.set(large.file_id, per_connection_rate=SLOW)
    out = (await cli("add", f"model:{large.model_id}", "-d", str(lib), "--json"))[1]
    return str(json.loads(out)["id"])


async def test_engine_stop_ends_attached_wait_and_event_stream_within_seconds(
    sim: Simulator, tmp_path: Path, clis: list[Cli]
) -> None:
    home = tmp_path / "home"
    cli = Cli(home, sim)
    clis.append(cli)
    await slow_job(sim, cli, tmp_path / "lib")
    waiter = await spawn(cli, "wait", "--timeout", "120")
    pid = cli.engine_pid()
    async with EngineClient(home / "engine.sock") as client:
        stream = client.events()
        assert (await anext(stream))["type"] == "snapshot"

        async def attached() -> bool:
            return (await client.status())["clients"] == {"waiting": 1, "streams": 1}

        deadline = time.monotonic() + 30
        while not await attached():
            assert time.monotonic() < deadline, "wait and the stream never attached"
            await asyncio.sleep(0.05)

        started = time.monotonic()
        code, out, _ = await cli("engine", "stop")
        assert code == 0 and "engine stopping" in out
        with pytest.raises(EngineStopped, match="engine stopped"):
            async with asyncio.timeout(10):
                async for _ in stream:
                    pass
    await until(lambda: gone(pid), 10)
    assert time.monotonic() - started < 6, "the engine lingered after `engine stop`"
    _, err = await asyncio.wait_for(waiter.communicate(), 10)
    assert waiter.returncode == 4
    assert "engine stopped" in err.decode()
    assert not (home / "engine.sock").exists()


async def test_wait_exit_status_tells_timeout_from_failure_and_success(
    sim: Simulator, tmp_path: Path, clis: list[Cli]
) -> None:
    cli = Cli(tmp_path / "home", sim)
    clis.append(cli)
    lib = tmp_path / "lib"
    job = await slow_job(sim, cli, lib)
    code, _, err = await cli("wait", "--timeout", "0.5", check=False)
    assert code == 3 and "not finished within 0.5 s" in err
    code, shown = await on_a_terminal(cli, "wait", "--timeout", "2")
    assert code == 3 and "0/1 jobs finished" in shown and "not finished within 2 s" in shown
    await cli("cancel", job)
    code, _, err = await cli("wait", job, check=False)
    assert code == 1 and "did not complete" in err
    small = next(m for m in sim.catalogue.models if not m.mode)
    done = json.loads((await cli("add", f"model:{small.id}", "-d", str(lib), "--json"))[1])
    code, out, _ = await cli("wait", done["id"], "--timeout", "60", check=False)
    assert code == 0 and "all jobs completed" in out
    code, _, err = await cli("wait", "nosuchjob", check=False)
    assert code == 1 and "no job with id" in err
    await cli("engine", "stop")


def test_wait_help_documents_exit_status() -> None:
    from click.testing import CliRunner

    from civitai_tui.cli import main

    out = CliRunner().invoke(main, ["wait", "--help"]).output
    for line in ("0  every job completed", "3  not finished within --timeout", "4  the engine"):
        assert line in out


async def test_a_stored_link_refused_before_it_expires_is_replaced_after_a_restart(
    sim: Simulator, tmp_path: Path, clis: list[Cli]
) -> None:
    """The link saved in the control file gets a 403 (revoked): one fresh /api/download hit."""
    cli, home, lib = engine_home(sim, tmp_path, clis, "[download]\ncheckpoint_seconds = 0.3\n")
    large = sim.catalogue.specials.large
    await slow_job(sim, cli, lib)

    def saved() -> ControlState | None:
        ctl = next(lib.glob("*.part.ctl"), None)
        state = load_control(ctl) if ctl else None
        return state if state and state.url and state.done_bytes else None

    await until(lambda: saved() is not None, 60)
    pid = cli.engine_pid()
    await cli("engine", "stop")
    await until(lambda: gone(pid), 10)
    stored = saved()
    assert stored is not None and stored.url is not None
    assert stored.url_expires_at is not None and stored.url_expires_at > time.time() + 3600
    sig = stored.url.rsplit("sig=", 1)[1]
    sim.faults.set(large.file_id, revoked=frozenset({sig}), per_connection_rate=0)
    hits = sum(sim.stats.download_hits.values())

    code, _, err = await cli("wait", "--timeout", "90", check=False)
    assert code == 0, err
    assert sum(sim.stats.download_hits.values()) == hits + 1
    (job,) = await cli.jobs()
    assert job["state"] == "COMPLETED"
    log = (home / "logs" / "civitai-tui.log").read_text()
    assert "storage refused the link" in log and "resolving again" in log and "HTTP 403" in log
    assert sig not in log
    assert not list(lib.glob("*.part*"))
    await cli("engine", "stop")
