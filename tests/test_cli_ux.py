"""What a new user meets at the command line: no terminal, prefixes, exit codes, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from civitai_tui.engine.process import EnginePaths, ensure_engine
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.simulator.server import Simulator
from tests.helpers import TOKEN, embedded_engine
from tests.test_civitai_client import small_plain_model

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("args", [(), ("--embedded",), ("demo",)])
async def test_the_ui_without_a_terminal_says_so_and_exits_2(
    isolated_home: Path, args: tuple[str, ...]
) -> None:
    code, out, err = await Cli(isolated_home)(*args)
    assert code == 2 and out == ""
    assert "civitai-tui needs a terminal: use ssh -t, or a CLI command" in err
    assert "\x1b[?" not in err  # no screen-mode escape codes anywhere
    assert not EnginePaths(isolated_home).socket.exists()  # nothing was started


async def test_job_id_prefixes_and_ls_when_piped(sim: Simulator, tmp_path: Path) -> None:
    home = tmp_path / "engine-home"
    async with embedded_engine(sim, home, "[bulk]\nstrategy = 'sequential'\n") as (_, client, _):
        sim.faults.set(sim.catalogue.specials.large.file_id, per_connection_rate=100_000)
        ids = []
        while True:  # 17 jobs: two of them share a first character (16 hex digits)
            job = await client.add(
                [f"model:{sim.catalogue.specials.large.model_id}"],
                options={"dest": str(tmp_path / "m")},
                name=f"a rather long job name number {len(ids)} " + "x" * 80,
            )
            ids.append(job["id"])
            if len({i[0] for i in ids}) < len(ids):
                break
        shared = next(i[0] for i in ids if sum(j[0] == i[0] for j in ids) > 1)
        unique = ids[-1][:7]
        cli = Cli(home)
        code, out, err = await cli("pause", unique)
        assert (code, out) == (0, f"{ids[-1]}: PAUSED\n"), err
        code, out, err = await cli("pause", shared)
        assert code == 1 and out == ""
        assert f"job id {shared!r} is ambiguous: " in err and "type more of the id" in err
        code, out, err = await cli("priority", "nope", "3")
        assert code == 1 and "no job with id 'nope'" in err
        code, out, _ = await cli("ls")  # stdout is a pipe: plain, unwrapped columns
        lines = out.splitlines()
        assert code == 0 and len(lines) == len(ids) + 1
        header = lines[0].split()  # "waiting": while a job waits (the engine says why)
        assert header[:7] == ["id", "state", "prio", "progress", "files", "size", "name"]
        assert header[7:] == (["waiting"] if "PENDING" in out else [])
        for job_id, line in zip([j["id"] for j in await client.jobs()], lines[1:], strict=True):
            assert line.split()[0] == job_id and "x" * 80 in line
        assert not any(c in out for c in "│┃━─")


async def test_get_ctrl_c_exits_130_and_keeps_partial_data(sim: Simulator, tmp_path: Path) -> None:
    large = sim.catalogue.specials.large
    sim.faults.set(large.file_id, per_connection_rate=200_000, total_rate=200_000)
    dest = tmp_path / "models"
    cli = Cli(tmp_path / "home", sim)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "civitai_tui", "get", f"model:{large.model_id}", "--dest", str(dest),
        env=cli.env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not list(dest.glob("*.part")) or sim.stats.storage_bytes_sent < 300_000:
        assert time.monotonic() < deadline, "no partial download appeared"
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = err.decode()
    assert proc.returncode == 130, text
    assert text.count("interrupted: partial downloads are kept in") == 1
    assert "run the same command again to resume" in text
    assert "Aborted!" not in text and "Traceback" not in text and out == b""
    [part] = dest.glob("*.part")
    assert part.stat().st_size > 0
    sim.faults.reset()
    code, _, err_text = await cli("get", f"model:{large.model_id}", "--dest", str(dest))
    assert code == 0, err_text
    assert not list(dest.glob("*.part"))


async def test_get_nothing_matched_and_filters_checked_before_any_request(
    sim: Simulator, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "home", sim)
    code, out, err = await cli("get", "search:zzqqxxnothingmatches", "--dest", str(tmp_path))
    assert code == 3 and out == ""
    assert "nothing matched search:zzqqxxnothingmatches: no files to download" in err
    before = sim.stats.api_requests
    for flag, value, what in (
        ("--types", "lorra", "model type"),
        ("--sort", "most popular", "sort"),
        ("--period", "fortnight", "period"),
    ):
        code, _, err = await cli("get", "search:anime", flag, value)
        assert code == 2 and f"unknown {what} {value!r}; choose one of: " in err, err
    assert "Checkpoint, TextualInversion" in err or "AllTime, Year" in err
    assert sim.stats.api_requests == before  # refused locally, the API never asked
    code, out, err = await cli(
        "get", "search:a", "--types", "lora", "--sort", "most downloaded", "--period", "alltime",
        "--limit", "1", "--dest", str(tmp_path / "m"), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["files"]


async def test_get_dry_run_prints_the_plan_and_downloads_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    model = next(m for m in sim.catalogue.models if m.type == "LORA" and not m.mode)
    dest = tmp_path / "models"
    cli = Cli(tmp_path / "home", sim, CIVITAI_TUI_BULK__LAYOUT="comfyui")
    args = ("get", f"model:{model.id}", "--dest", str(dest), "--dry-run")
    code, out, err = await cli(*args, "--json")
    assert code == 0, err
    plan = json.loads(out)
    [planned] = plan["files"]
    size = model.versions[0].primary_file().size
    assert planned["path"].startswith(str(dest / "loras")) and planned["size"] == size
    assert (planned["model"], planned["model_id"], planned["present"]) == (
        model.name,
        model.id,
        False,
    )
    assert plan["download_bytes"] == size and plan["present_bytes"] == 0
    assert plan["free_after"] == pytest.approx(plan["free_bytes"] - size, abs=16 * 2**20)
    assert sim.stats.storage_bytes_sent == 0 and not dest.exists()  # nothing fetched
    assert (await cli(*args[:-1]))[0] == 0  # the real download
    code, out, _ = await cli(*args)
    assert code == 0 and "Plan (nothing downloaded)" in out and "present" in out
    assert "1 file(s): 0 to download (0 B), 1 already present; free space after:" in out


async def test_add_dry_run_plans_by_the_queue_rules_and_queues_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    model = next(m for m in sim.catalogue.models if m.type == "LORA" and not m.mode)
    dest = tmp_path / "models"
    home = tmp_path / "home"
    cli = Cli(home, sim, CIVITAI_TUI_BULK__LAYOUT="comfyui")
    code, out, err = await cli(
        "add", f"model:{model.id}", "--dest", str(dest), "--dry-run", "--json"
    )
    assert code == 0, err
    [planned] = json.loads(out)["files"]
    assert planned["path"].startswith(str(dest / "loras"))  # the queue's library layout
    assert planned["size"] == model.versions[0].primary_file().size
    assert not EnginePaths(home).socket.exists()  # no engine was started, no job queued
    assert not sim.stats.download_hits and sim.stats.storage_requests == 0
    code, out, err = await cli("add", "search:zzqqxxnothingmatches", "--dry-run")
    assert code == 3 and "nothing matched" in err


async def test_simulator_fault_flags_are_documented_and_applied(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    code, out, _ = await cli("simulator", "--help")
    for flag in ("--rate", "--total-rate", "--latency", "--reset-every", "--fail-status"):
        assert flag in out
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "civitai_tui", "simulator", "--port", "0",
        "--fail-status", "503", "--fail-count", "2", "--rate", "4MB",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, "the simulator exited early"
            lines.append(line.decode().strip())
        assert any("'fail_status': 503" in line and "4000000" in line for line in lines)
        export = next(line for line in lines if line.startswith("export "))
        env = dict(part.split("=", 1) for part in export.split()[1:])
        cli.env.update(env)
        code, out, err = await cli(
            "get", "search:a", "--limit", "1", "--json", "--dest", str(tmp_path / "m")
        )
        assert code == 0, err
        [landed] = json.loads(out)["files"]
        assert landed["retries"] >= 1  # the 503s were served, and survived
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


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
