"""``civitai-tui get`` as a user runs it: a subprocess against the simulator."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from civitai_tui.analytics.analyzer import AnalyticsAnalyzer
from civitai_tui.download.control import control_path, load_control
from civitai_tui.simulator.server import Simulator
from tests.helpers import TOKEN


async def run_cli(
    home: Path,
    sim: Simulator,
    *args: str,
    token: str | None = TOKEN,
    env: dict[str, str] | None = None,
) -> tuple[int, dict | str, str]:
    extra = env or {}
    env = {**os.environ, "CIVITAI_TUI_HOME": str(home), "CIVITAI_BASE_URL": sim.api_url, **extra}
    env.pop("CIVITAI_API_KEY", None)
    if token:
        env["CIVITAI_API_KEY"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "civitai_tui",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode()
    try:
        parsed: dict | str = json.loads(text)
    except json.JSONDecodeError:
        parsed = text
    assert proc.returncode is not None
    return proc.returncode, parsed, err.decode()


def ordinary_models(sim: Simulator, count: int) -> list[int]:
    return [m.id for m in sim.catalogue.ordinary_models()[:count]]


async def test_get_json_summary_and_exit_zero(sim: Simulator, tmp_path: Path) -> None:
    ids = ordinary_models(sim, 3)
    code, summary, _ = await run_cli(
        tmp_path / "home",
        sim,
        "get",
        *(f"model:{i}" for i in ids),
        "--dest",
        str(tmp_path / "m"),
        "--json",
    )
    assert code == 0 and isinstance(summary, dict)
    assert summary["ok"] and summary["totals"]["completed"] == 3
    for f in summary["files"]:
        data = Path(f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"].lower()
        assert f["verified"] and f["status"] == "completed" and f["bytes"] == len(data)
    # `get` records its downloads in analytics.db like the engine does.
    totals = AnalyticsAnalyzer(tmp_path / "home" / "analytics.db").analyze_days(1).totals
    assert totals.completed == 3 and totals.bytes == summary["totals"]["bytes"]


async def test_get_exit_one_with_clear_errors_and_token_never_printed(
    sim: Simulator, tmp_path: Path
) -> None:
    specials = sim.catalogue.specials
    code, summary, err = await run_cli(
        tmp_path / "home",
        sim,
        "get",
        f"model:{specials.early_access.model_id}",
        f"model:{specials.malicious_ckpt.model_id}",
        "model:2147483000",
        "--dest",
        str(tmp_path / "m"),
        "--json",
    )
    assert code == 1 and isinstance(summary, dict) and not summary["ok"]
    kinds = {f["error"]["kind"] for f in summary["files"]}
    assert {"early_access", "unsafe"} <= kinds
    assert summary["target_failures"][0]["error"]["kind"] == "not_found"
    assert not list((tmp_path / "m").glob("*.ckpt"))  # never at the final path
    everything = json.dumps(summary) + err
    everything += "".join(p.read_text() for p in (tmp_path / "home").rglob("*.log"))
    assert TOKEN not in everything


async def test_get_without_a_token_says_what_to_do(sim: Simulator, tmp_path: Path) -> None:
    (model,) = ordinary_models(sim, 1)
    code, summary, _ = await run_cli(
        tmp_path / "home", sim, "get", f"model:{model}", "-d", str(tmp_path), "--json", token=None
    )
    assert code == 1 and isinstance(summary, dict)
    error = summary["files"][0]["error"]
    assert error["kind"] == "auth_required" and "CIVITAI_API_KEY" in error["message"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["get", "model:abc"], "model:abc"),
        (["get", "ftp://host/file"], "http"),
        (["get", "@/nonexistent/list.txt"], "list.txt"),
        (["get"], "Missing argument"),
        (["get", "model:1", "--connections", "0"], "--connections"),
    ],
)
async def test_bad_usage_exits_two(
    sim: Simulator, tmp_path: Path, args: list[str], words: str
) -> None:
    code, _, err = await run_cli(tmp_path / "home", sim, *args)
    assert code == 2 and words in err


@pytest.mark.slow
async def test_sigkill_mid_file_resumes_losing_at_most_one_checkpoint(
    sim: Simulator, tmp_path: Path
) -> None:
    large = sim.catalogue.specials.large
    rate, checkpoint = 2_000_000, 0.5
    sim.faults.set(large.file_id, per_connection_rate=rate)
    home, dest = tmp_path / "home", tmp_path / "m"
    home.mkdir()
    (home / "config.toml").write_text(f"[download]\ncheckpoint_seconds = {checkpoint}\n")
    env = {
        **os.environ,
        "CIVITAI_TUI_HOME": str(home),
        "CIVITAI_BASE_URL": sim.api_url,
        "CIVITAI_API_KEY": TOKEN,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "civitai_tui",
        "get",
        f"model:{large.model_id}",
        "-d",
        str(dest),
        "--connections",
        "8",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    part = dest / (sim.catalogue.file(large.file_id).name + ".part")
    deadline = asyncio.get_running_loop().time() + 60
    state = None
    while state is None or state.done_bytes < 20_000_000:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
        state = load_control(control_path(part)) if control_path(part).exists() else None
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    sent_before = sim.stats.bytes_per_file[large.file_id]
    saved = load_control(control_path(part))
    assert saved is not None and 0 < saved.done_bytes < large_size(sim)
    hits_before = sum(sim.stats.download_hits.values())
    requests_before = len(sim.stats.range_requests)

    sim.faults.reset()
    code, summary, err = await run_cli(
        home, sim, "get", f"model:{large.model_id}", "-d", str(dest), "--json", "--connections", "8"
    )
    assert code == 0, err
    assert isinstance(summary, dict)
    refetched = sim.stats.bytes_per_file[large.file_id] - sent_before
    lost = sent_before - saved.done_bytes
    connections = summary["files"][0]["connections"] or 16
    # What the kill cost: bytes that arrived after the last checkpoint, at most one window.
    assert lost <= (checkpoint + 1.0) * rate * max(connections, 16)
    # The resume asks only for what is missing: no range overlaps a saved span ...
    for file_id, header in sim.stats.range_requests[requests_before:]:
        assert file_id == large.file_id and header is not None
        start, _, end = header.removeprefix("bytes=").partition("-")
        for done_start, done_end in saved.done:
            assert int(end) < done_start or int(start) >= done_end, (header, saved.done)
    # ... and transfers little more: a connection cut short when its segment is split
    # (work stealing) still had bytes in flight in the socket buffers.
    assert large_size(sim) - saved.done_bytes <= refetched
    assert refetched <= large_size(sim) - saved.done_bytes + 4 * 2**20 * connections
    assert summary["files"][0]["sha256"].upper() == sim.catalogue.file(large.file_id).sha256.upper()
    assert sum(sim.stats.download_hits.values()) == hits_before  # the signed URL was reused


@pytest.mark.slow
async def test_get_lets_the_optimizer_choose_connections_unless_they_are_fixed(
    sim: Simulator, tmp_path: Path
) -> None:
    large = sim.catalogue.specials.large
    sim.faults.set(large.file_id, per_connection_rate=4_000_000)  # a CDN-like cap
    runs = {}
    for label, extra in (("optimized", ()), ("fixed", ("--connections", "3"))):
        code, summary, err = await run_cli(
            tmp_path / "home",
            sim,
            "get",
            f"model:{large.model_id}",
            "-d",
            str(tmp_path / label),
            "--json",
            *extra,
        )
        assert code == 0 and isinstance(summary, dict), err
        runs[label] = summary["files"][0]["connections"]
    assert runs["optimized"] >= 16  # probed far above a fixed default of 8
    assert runs["fixed"] == 3


def large_size(sim: Simulator) -> int:
    return sim.catalogue.file(sim.catalogue.specials.large.file_id).size
