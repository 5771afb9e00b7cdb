"""A waiting job or file says why, from the real engine: ``ls --json`` (job and file
``waiting``/``reason``), the job details and the plain ``ls`` table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from civitai_tui.engine.client import EngineClient
from civitai_tui.simulator.server import Simulator
from tests.engine_cli import Cli, engine_home
from tests.test_engine_truth import small_models

SEQUENTIAL = "[bulk]\nstrategy = 'sequential'\nbatch_size = 1\n"


async def add(cli: Cli, lib: Path, *targets: str) -> str:
    out = (await cli("add", *targets, "--dest", str(lib), "--json"))[1]
    return str(json.loads(out)["id"])


async def listed(cli: Cli) -> dict[str, dict[str, Any]]:
    return {job["id"]: job for job in await cli.jobs()}


async def settles(cli: Cli, check: Callable[[dict[str, dict[str, Any]]], bool]) -> dict[str, Any]:
    """``ls --json`` until ``check`` holds (each call is a CLI subprocess: a real client)."""
    jobs: dict[str, dict[str, Any]] = {}
    for _ in range(60):
        jobs = await listed(cli)
        if check(jobs):
            return jobs
    raise AssertionError(f"never settled: {jobs}")


async def test_queued_jobs_and_files_say_why_they_wait(
    sim: Simulator, tmp_path: Path, clis: list[Cli]
) -> None:
    sim.faults.set(total_rate=5_000)  # the first file takes long enough to look at the queue
    cli, home, lib = engine_home(sim, tmp_path, clis, SEQUENTIAL)
    # the largest file first: it is the one the second job shares
    (three, shared), (one, _), (two, _) = sorted(small_models(sim, 3), key=lambda m: -m[1].size)
    first = await add(cli, lib, f"model:{three.id}", f"model:{one.id}")
    jobs = await settles(cli, lambda j: j[first]["state"] == "PROCESSING")
    same = await add(cli, lib, f"model:{three.id}")  # the same file, into the same folder
    last = await add(cli, lib, f"model:{two.id}")
    slot = "all 1 batch slot(s) busy (bulk.strategy = sequential)"

    def explained(jobs: dict[str, dict[str, Any]]) -> bool:
        found = all(jobs[j]["files"] and jobs[j]["waiting"] for j in (same, last))
        return found and any(
            f["state"] == "pending" and f["reason"] == slot for f in jobs[first]["files"]
        )

    jobs = await settles(cli, explained)
    assert jobs[first]["waiting"] is None  # its first file is moving
    writing = f"waiting for job {first}: it is writing the same file ({lib / shared.name})"
    (copy,) = jobs[same]["files"]
    assert copy["state"] == "pending" and copy["reason"] == copy["waiting"] == writing
    assert jobs[same]["waiting"] == f"{writing}; 1 job(s) ahead in the queue"
    assert jobs[last]["waiting"] == f"{slot}; 2 job(s) ahead in the queue"

    async with EngineClient(home / "engine.sock") as client:  # job details: the same words
        assert (await client.job(last))["waiting"] == jobs[last]["waiting"]
    code, out, _ = await cli("ls")
    header, *rows = out.splitlines()
    assert code == 0 and header.split()[-1] == "waiting"
    said = jobs[last]["waiting"]
    assert any(row.split()[0] == last and row.rstrip().endswith(said) for row in rows), out

    await cli("pause", first)  # paused: it waits for the user, nothing to explain
    jobs = await settles(cli, lambda j: j[first]["state"] == "PAUSED")
    assert jobs[first]["waiting"] is None
    assert all(f["waiting"] is None for f in jobs[first]["files"])


async def test_a_file_held_by_the_host_connection_budget_says_so(
    sim: Simulator, tmp_path: Path, clis: list[Cli]
) -> None:
    sim.faults.set(total_rate=60_000)
    config = "[performance]\nmode = 'minimal'\n[bulk]\nbatch_size = 3\n"  # 2 per host, 3 files
    cli, _, lib = engine_home(sim, tmp_path, clis, config)
    models = [model for model, _ in small_models(sim, 3)]
    job = await add(cli, lib, *(f"model:{m.id}" for m in models))

    def held(jobs: dict[str, dict[str, Any]]) -> bool:
        files = jobs[job]["files"]
        return sum(f["state"] == "downloading" for f in files) == 3 and any(
            f["waiting"] for f in files
        )

    jobs = await settles(cli, held)
    (waiting,) = [f for f in jobs[job]["files"] if f["waiting"]]
    assert waiting["waiting"] == (
        "waiting for a connection to 127.0.0.1: its 2 allowed connection(s) are in use"
    )
    assert waiting["reason"] == waiting["waiting"]
    assert jobs[job]["waiting"] is None  # two of its files are moving


async def test_the_pause_between_batches_is_named(
    sim: Simulator, tmp_path: Path, clis: list[Cli]
) -> None:
    config = SEQUENTIAL + "pause_between_batches = 60\n"
    cli, _, lib = engine_home(sim, tmp_path, clis, config)
    (one, _), (two, _) = small_models(sim, 2)
    job = await add(cli, lib, f"model:{one.id}", f"model:{two.id}")
    jobs = await settles(cli, lambda j: j[job]["files_done"] == 1)
    pause = "batch pause: 60 s between batches (bulk.pause_between_batches)"
    assert jobs[job]["waiting"] == pause
    assert [f["reason"] for f in jobs[job]["files"] if f["state"] == "pending"] == [pause]
