"""The CLI as a user runs it (subprocesses with their own state dir): exit codes and messages."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from civitai_tui.engine.process import EnginePaths, ensure_engine
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.simulator.server import Simulator
from tests.conftest import TOKEN
from tests.test_civitai_client import small_plain_model

pytestmark = pytest.mark.slow


class Cli:
    """Runs ``python -m civitai_tui`` with one state dir (and the simulator, if any)."""

    def __init__(self, home: Path, sim: Simulator | None = None, **env: str) -> None:
        # Wide columns: rich would wrap long error messages (and paths) on stderr.
        self.env = {**os.environ, "CIVITAI_TUI_HOME": str(home), "COLUMNS": "400", **env}
        self.cwd = home.parent  # a relative default destination stays in the test's folder
        self.env.pop("CIVITAI_API_KEY", None)
        if sim is not None:
            self.env.update(CIVITAI_BASE_URL=sim.api_url, CIVITAI_API_KEY=TOKEN)

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "civitai_tui",
            *args,
            env=self.env,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


async def test_config_commands_validate_and_persist(isolated_home: Path) -> None:
    cli = Cli(isolated_home)
    code, out, _ = await cli("config", "keys")
    assert code == 0 and "bulk.batch_size = 5  # Files per batch." in out
    assert await cli("config", "set", "bulk.batch_size", "7") == (0, "bulk.batch_size = 7\n", "")
    assert (await cli("config", "get", "bulk.batch_size"))[:2] == (0, "7\n")
    code, out, _ = await cli("config", "get")
    assert code == 0 and "bulk.batch_size = 7\n" in out and 'ui.theme = "civitai-dark"' in out
    code, _, err = await cli("config", "set", "bulk.batch_size", "0")
    assert code == 2 and "bulk.batch_size: '0' is too small" in err
    code, _, err = await cli("config", "get", "bulk.nope")
    assert code == 2 and "unknown config key" in err
    assert "batch_size = 7" in (isolated_home / "config.toml").read_text()
    (isolated_home / "config.toml").write_text("[bulk\n")
    code, _, err = await cli("config", "get", "bulk.batch_size")
    assert code == 2 and "not valid TOML" in err and "fix or delete the file" in err


async def test_engine_command_usage_without_an_engine(isolated_home: Path) -> None:
    cli = Cli(isolated_home)
    code, _, err = await cli("engine", "--tcp", "no-port")
    assert code == 2 and "expected HOST:PORT" in err
    code, _, err = await cli("engine", "--tcp", "127.0.0.1:1")
    assert code == 2 and "needs a token" in err and "--token-file" in err
    assert await cli("engine", "stop") == (0, "no engine is running\n", "")
    assert not EnginePaths(isolated_home).socket.exists()


async def test_get_shows_progress_on_a_terminal_and_a_summary_table(
    sim: Simulator, isolated_home: Path, tmp_path: Path
) -> None:
    model = small_plain_model(sim)
    missing = max(m.id for m in sim.catalogue.models) + 1000
    cli = Cli(isolated_home, sim, TTY_COMPATIBLE="1", COLUMNS="160")
    dest = str(tmp_path / "m")
    code, out, err = await cli(
        "get", f"model:{model.id}", f"model:{missing}", "-d", dest, "--connections", "2"
    )
    assert code == 1  # one target failed
    assert "all 1 file(s)" in err  # the progress bars went to stderr
    # One unit convention: the bars, their speed and the summary all in binary units.
    assert "KiB" in err and "KiB" in out and not re.search(r"\d ?[kMG]B\b", err + out)
    assert "Summary" in out and "completed" in out and "failed" in out
    assert f"model {missing}" in out and "not found" in out
    [landed] = (tmp_path / "m").glob("*.safetensors")
    assert landed.stat().st_size == model.versions[0].primary_file().size


async def test_demo_without_the_ui_downloads_the_sample_and_refuses_the_pickle(
    isolated_home: Path, tmp_path: Path
) -> None:
    cli = Cli(isolated_home, TTY_COMPATIBLE="1")
    code, _, err = await cli("demo", "--no-tui", "--dest", str(tmp_path / "models"))
    assert code == 0, err
    assert "refused as planned" in err and "dangerous pickle globals" in err
    assert not list((tmp_path / "models").glob("*.ckpt"))  # the pickle never landed
    assert len(list((tmp_path / "models").glob("*.safetensors"))) >= 6
    # Kept aside, with its reason, in the demo's own state dir (never the real one).
    [refused] = (isolated_home / "demo" / "quarantine").glob("*.ckpt")
    assert refused.stat().st_size > 0
    assert not (isolated_home / "quarantine").exists()
    assert f"refused files are in {isolated_home / 'demo' / 'quarantine'}" in err


async def test_an_engine_that_cannot_start_says_so_with_its_log(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True)
    (isolated_home / "config.toml").write_text("[bulk]\nbatch_size = 'many'\n")
    with pytest.raises(CivitaiTuiError) as err:
        await ensure_engine(isolated_home)
    assert err.value.kind is FailureKind.ENGINE
    assert "the engine exited at start (status 2)" in err.value.message
    log = EnginePaths(isolated_home).log
    assert str(log) in err.value.message and "bulk.batch_size" in log.read_text()


async def until_gone(path: Path, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while path.exists():
        assert asyncio.get_running_loop().time() < deadline, f"{path} still there"
        await asyncio.sleep(0.05)


async def test_queue_commands_drive_a_background_engine(
    sim: Simulator, isolated_home: Path, tmp_path: Path
) -> None:
    cli = Cli(isolated_home, sim)
    code, _, err = await cli("add", "model:abc")
    assert code == 2 and "model:abc" in err
    assert not EnginePaths(isolated_home).socket.exists()  # bad usage starts nothing
    try:
        await queue_session(cli, sim, tmp_path)
    finally:
        code, out, _ = await cli("engine", "stop")
        await until_gone(EnginePaths(isolated_home).socket)
    assert (code, out) == (0, "engine stopping\n")


async def queue_session(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    assert await cli("ls") == (0, "no jobs\n", "")
    huge = sim.catalogue.specials.huge
    sim.faults.set(huge.file_id, per_connection_rate=100_000)
    code, out, _ = await cli(
        "add", f"model:{huge.model_id}", "--name", "big", "-p", "3", "-d", str(tmp_path), "--json"
    )
    big = json.loads(out)
    assert code == 0 and (big["name"], big["priority"]) == ("big", 3)
    model = small_plain_model(sim)
    code, out, _ = await cli("add", f"model:{model.id}", "-d", str(tmp_path / "m"))
    assert code == 0 and out.startswith("queued job ") and out.endswith("(priority 0)\n")
    small = out.split()[2].rstrip(":")

    code, _, err = await cli("wait", big["id"], "--timeout", "0.3")
    assert code == 3 and "not finished within 0.3 s" in err
    assert await cli("priority", big["id"], "9") == (0, f"{big['id']}: priority 9\n", "")
    assert (await cli("pause", big["id"]))[1] == f"{big['id']}: PAUSED\n"
    assert (await cli("resume", big["id"]))[1] == f"{big['id']}: PENDING\n"
    assert (await cli("cancel", big["id"]))[1] == f"{big['id']}: CANCELLED\n"
    assert (await cli("retry", big["id"]))[1] == f"{big['id']}: PENDING\n"
    assert (await cli("cancel", big["id"]))[0] == 0
    assert await cli("wait", small, "--timeout", "30") == (0, "all jobs completed\n", "")
    code, _, err = await cli("wait")
    assert code == 1 and "some jobs did not complete" in err

    code, out, _ = await cli("ls", "--json")
    states = {j["id"]: j["state"] for j in json.loads(out)}
    assert states == {big["id"]: "CANCELLED", small: "COMPLETED"}
    code, out, _ = await cli("ls")
    assert code == 0 and "CANCELLED" in out and "COMPLETED" in out and "100%" in out
    code, _, err = await cli("pause", "nope")
    assert code == 1 and "no job with id 'nope'" in err

    pid = await cli_status_pid(cli)
    code, _, err = await cli("engine")
    assert code == 1 and f"already running for {cli.env['CIVITAI_TUI_HOME']} (pid {pid})" in err
    # As under `textual serve` (a driver that needs no terminal): the engine check speaks.
    cli.env["TEXTUAL_DRIVER"] = "textual.drivers.web_driver:WebDriver"
    code, _, err = await cli("--embedded")
    del cli.env["TEXTUAL_DRIVER"]
    assert code == 1 and "an engine already runs" in err
    code, out, _ = await cli("config", "set", "bulk.batch_size", "3")
    assert out == "bulk.batch_size = 3 (applied to the running engine)\n"
    code, out, _ = await cli("config", "set", "api.max_answer_mb", "8")
    assert out == "api.max_answer_mb = 8 (takes effect when the engine or the UI restarts)\n"
    os.kill(pid, 0)  # still alive after all of that


async def cli_status_pid(cli: Cli) -> int:
    from civitai_tui.engine.client import EngineClient

    async with EngineClient(EnginePaths(Path(cli.env["CIVITAI_TUI_HOME"])).socket) as client:
        return int((await client.status())["pid"])


async def test_simulator_command_serves_until_sigterm(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "civitai_tui",
        "simulator",
        "--port",
        "0",
        "--seed",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines = []
    while not lines or not lines[-1].startswith("Press Ctrl-C"):
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "the simulator exited early"
        lines.append(line.decode().strip())
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert lines[0].startswith("CivitAI simulator (seed 3,")
    assert any(line.startswith("export CIVITAI_BASE_URL=http://127.0.0.1:") for line in lines)
