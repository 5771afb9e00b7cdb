"""The real thing: the CLI drives an engine subprocess that is SIGKILLed mid-run, twice."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import pytest

from civitai_tui.download.control import load_control
from civitai_tui.engine.client import EngineClient
from civitai_tui.simulator.server import Simulator
from tests.engine_cli import Cli, engine_home, gone, kill, until

pytestmark = pytest.mark.slow

RATE = 1_000_000  # bytes/s per connection, so the run lasts long enough to be killed
CHECKPOINT_SECONDS = 0.5


async def test_engine_survives_two_sigkills_and_downloads_everything_once(
    sim: Simulator, tmp_path: Path, clis: list[Cli]
) -> None:
    cli, home, lib = engine_home(
        sim,
        tmp_path,
        clis,
        "[bulk]\nbatch_size = 2\nconcurrent_batches = 2\nstrategy = 'parallel'\n"
        f"[download]\ncheckpoint_seconds = {CHECKPOINT_SECONDS}\n",
    )
    specials = sim.catalogue.specials
    models = [m.id for m in sim.catalogue.ordinary_models()]
    groups = [models[0:6], models[6:12], models[12:18], models[18:24], models[24:27]]
    sim.faults.set(per_connection_rate=RATE, fail_status=503, fail_count=4, retry_after=0.2)

    ids = []
    for i, group in enumerate(groups):
        targets = [f"model:{m}" for m in group]
        if i == 4:
            targets.append(f"model:{specials.large.model_id}")
        flags = ["--all-versions"] if i == 0 else []
        out = (await cli("add", *targets, *flags, "--dest", str(lib), "--json"))[1]
        ids.append(json.loads(out)["id"])
        if i == 1:  # at once: under load the next CLI calls take long enough for it to finish
            await cli("pause", ids[1])
    await cli("priority", ids[3], "7")
    total_files = sum(j["files_total"] for j in await cli.jobs())

    for kill_after in (6_000_000, 30_000_000):
        await until(lambda n=kill_after: sim.stats.storage_bytes_sent > n)
        pid = cli.engine_pid()
        kill(pid)
        await until(lambda p=pid: gone(p), 10)
        jobs = {j["id"]: j for j in await cli.jobs()}  # restarts the engine
        assert cli.engine_pid() != pid
        assert jobs[ids[1]]["state"] == "PAUSED" and jobs[ids[3]]["priority"] == 7

    await cli("resume", ids[1])
    sim.faults.reset()
    code, out, err = await cli("wait", "--timeout", "120", check=False)
    assert code == 0, err
    jobs = await cli.jobs()
    total_files = sum(j["files_total"] for j in jobs)
    assert total_files >= 30 and all(j["state"] == "COMPLETED" for j in jobs)
    assert {j["id"]: j["priority"] for j in jobs}[ids[3]] == 7

    sizes = {}
    async with EngineClient(home / "engine.sock") as client:
        details = [await client.job(j["id"]) for j in jobs]
    for f in (f for d in details for f in d["files"]):
        file_id = int(f["key"].rsplit(":", 1)[1])
        path = Path(f["path"])
        assert path.parent == lib
        assert hashlib.sha256(path.read_bytes()).hexdigest().upper() == f["sha256"].upper()
        assert f["sha256"].upper() == sim.catalogue.file(file_id).sha256.upper()
        sizes[file_id] = path.stat().st_size
    assert len(sizes) == total_files
    assert not [p for p in lib.iterdir() if p.name.endswith((".part", ".ctl"))]
    # No file fetched twice: a kill may cost at most one checkpoint window of its connections.
    for file_id, size in sizes.items():
        conns = 16 if size > 8 * 2**20 else 1
        allowance = 2 * (CHECKPOINT_SECONDS + 1.0) * RATE * conns
        assert sim.stats.bytes_per_file[file_id] <= size + allowance, file_id
    await cli("engine", "stop")
    await until(lambda: not (home / "engine.sock").exists(), 15)


async def test_sigterm_saves_state_and_the_next_start_resumes(
    sim: Simulator, tmp_path: Path, clis: list[Cli]
) -> None:
    cli, home, lib = engine_home(sim, tmp_path, clis, "[download]\ncheckpoint_seconds = 0.5\n")
    large = sim.catalogue.specials.large
    sim.faults.set(large.file_id, per_connection_rate=RATE)
    job = json.loads((await cli("add", f"model:{large.model_id}", "-d", str(lib), "--json"))[1])
    await until(lambda: sim.stats.bytes_per_file[large.file_id] > 8_000_000)
    pid = cli.engine_pid()
    os.kill(pid, signal.SIGTERM)
    await until(lambda p=pid: gone(p), 30)
    assert not (home / "engine.sock").exists()  # a clean exit removes its socket
    (ctl,) = lib.glob("*.part.ctl")  # partial data kept, with its resume state
    assert list(lib.glob("*.part"))
    saved = load_control(ctl)
    assert saved is not None and saved.done_bytes > 0
    sent = sim.stats.bytes_per_file[large.file_id]
    requests_before = len(sim.stats.range_requests)
    sim.faults.reset()
    (listed,) = await cli.jobs()  # restarts the engine
    assert listed["id"] == job["id"] and listed["state"] in ("PENDING", "PROCESSING")
    code, _, err = await cli("wait", "--timeout", "60", check=False)
    assert code == 0, err
    size = sim.catalogue.file(large.file_id).size
    # Resumed, not restarted: no range asked after the restart overlaps a saved span,
    # and the bytes moved are what was missing plus what cut connections had in flight.
    for _, header in sim.stats.range_requests[requests_before:]:
        start, _, end = (header or "bytes=0-").removeprefix("bytes=").partition("-")
        for done_start, done_end in saved.done:
            assert (end and int(end) < done_start) or int(start) >= done_end, header
    refetched = sim.stats.bytes_per_file[large.file_id] - sent
    assert size - saved.done_bytes <= refetched <= size - saved.done_bytes + 4 * 2**20 * 8
    await cli("engine", "stop")
