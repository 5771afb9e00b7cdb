"""What a new user meets at the command line: no terminal, prefixes, exit codes, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from civitai_tui.engine.process import EnginePaths
from civitai_tui.simulator.server import Simulator
from tests.conftest import embedded_engine
from tests.test_cov_cli import Cli

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
        assert lines[0].split() == ["id", "state", "prio", "progress", "files", "size", "name"]
        for job_id, line in zip([j["id"] for j in await client.jobs()], lines[1:], strict=True):
            assert line.split()[0] == job_id and line.rstrip().endswith("x" * 80)
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
