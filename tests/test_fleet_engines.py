"""Fleet mode end to end: real engine processes with their own state dirs, one real
Valkey/Redis server, the simulator, and the CLI from a machine that runs no engine."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from civitai_tui.fleet import registry
from civitai_tui.fleet.connection import parse_fleet_url
from civitai_tui.fleet.queue import FleetQueue
from civitai_tui.fleet.worker import part_tag
from civitai_tui.simulator.catalogue import SimFile
from civitai_tui.simulator.server import Simulator
from tests.engine_cli import until
from tests.helpers import TOKEN
from tests.redis_server import Factory, RedisServer
from tests.test_engine_truth import small_models

#: Engine processes on a loaded 2-core machine: minutes, not the suite's default 120 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

SECRET = "fleet-acl-Pa55-never-logged"
LEASE = 3.0
CONFIG = (
    f"[fleet]\nlease = {LEASE}\nname = '{{name}}'\n"
    "[download]\ncheckpoint_seconds = 0.3\n"
    "[analytics]\nenabled = false\n"
)


@dataclass
class Fleet:
    """Engines on one server and simulator, and a CLI with no engine of its own."""

    sim: Simulator
    server: RedisServer
    root: Path
    lib: Path
    engines: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    def env(self, home: Path) -> dict[str, str]:
        return {**self.sim.client_env(home, TOKEN), "CIVITAI_TUI_FLEET": self.server.url}

    def home(self, name: str) -> Path:
        return self.root / name

    async def start(self, name: str) -> None:
        home = self.home(name)
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(CONFIG.format(name=name))
        self.engines[name] = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "civitai_tui",
            "engine",
            env=self.env(home),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    def signal(self, name: str, sig: int) -> None:
        os.kill(self.engines[name].pid, sig)

    async def cli(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        home = self.home("client")
        home.mkdir(parents=True, exist_ok=True)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "civitai_tui",
            *args,
            env=self.env(home),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 150)
        except TimeoutError:
            proc.kill()
            raise AssertionError(f"civitai-tui {' '.join(args)} hung; {self.logs()}") from None
        assert not check or proc.returncode == 0, f"{args} -> {proc.returncode}: {err.decode()}"
        return proc.returncode or 0, out.decode(), err.decode()

    def logs(self) -> str:
        """The engines' log tails, for a failure message."""
        tails = []
        for name in self.engines:
            path = self.home(name) / "logs" / "civitai-tui.log"
            text = path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"
            tails.append(f"--- {name} ---\n{text}")
        return "\n".join(tails)

    async def add(self, *targets: str) -> str:
        out = (await self.cli("add", *targets, "--dest", str(self.lib), "--json"))[1]
        return str(json.loads(out)["id"])

    async def files(self) -> list[dict[str, Any]]:
        jobs = json.loads((await self.cli("ls", "--json"))[1])
        return [f for job in jobs for f in job["files"]]

    async def stop_all(self) -> None:
        for proc in self.engines.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.engines.values():
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def fleet(sim: Simulator, redis_factory: Factory, tmp_path: Path) -> AsyncIterator[Fleet]:
    server = redis_factory(user="engines", password=SECRET)
    running = Fleet(sim, server, tmp_path / "fleet", tmp_path / "lib")
    try:
        yield running
    finally:
        await running.stop_all()


@pytest.fixture
async def queue(fleet: Fleet) -> AsyncIterator[FleetQueue]:
    client = parse_fleet_url(fleet.server.url, "test").client()
    try:
        yield FleetQueue(client)
    finally:
        await client.aclose()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest().upper()


async def alive(queue: FleetQueue, *names: str) -> None:
    async def check() -> bool:
        found = {e.name for e in await registry.engines(queue.client) if e.alive}
        return set(names) <= found

    await poll(check)


async def poll(check: Any, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "deadline passed"
        await asyncio.sleep(0.05)


async def holder(queue: FleetQueue) -> tuple[str | None, int]:
    """The engine holding the one fleet file, and the bytes it checkpointed."""
    [job] = await queue.jobs(files=True)
    [f] = job.files
    return f.engine, int(f.checkpoint.get("done", 0))


async def downloading_on_node_a(fleet: Fleet, queue: FleetQueue, model_id: int) -> str:
    """Start engine node-a, queue the model and wait until node-a checkpointed bytes of it."""
    await fleet.start("node-a")
    await alive(queue, "node-a")
    job_id = await fleet.add(f"model:{model_id}")

    async def a_has_bytes() -> bool:
        engine, done = await holder(queue)
        return engine == "node-a" and done > 0

    await poll(a_has_bytes)
    return job_id


def slow(sim: Simulator, file: SimFile, seconds: float = 20) -> None:
    sim.faults.set(file.id, per_connection_rate=max(file.size // int(seconds * 8), 1))


async def test_three_engines_drain_a_queue_each_file_once_no_credentials_anywhere(
    fleet: Fleet, queue: FleetQueue
) -> None:
    models = small_models(fleet.sim, 9)
    for name in ("node-a", "node-b", "node-c"):
        await fleet.start(name)
    await alive(queue, "node-a", "node-b", "node-c")
    job_id = await fleet.add(*(f"model:{m.id}" for m, _ in models))
    await fleet.cli("wait", job_id, "--timeout", "120")

    files = await fleet.files()
    assert len(files) == 9 and {f["state"] for f in files} == {"completed"}
    for _, primary in models:
        assert sha256(fleet.lib / primary.name) == primary.sha256.upper()
    sent = (fleet.sim.stats.bytes_per_file[p.id] for _, p in models)
    assert list(sent) == [p.size for _, p in models]  # each file fetched exactly once
    assert {f["finished_by"] for f in files} <= {"node-a", "node-b", "node-c"}
    status = json.loads((await fleet.cli("fleet", "status", "--json"))[1])
    assert {e["name"] for e in status["engines"] if e["alive"]} == {"node-a", "node-b", "node-c"}
    assert status["queue"]["jobs"] == {"completed": 1}
    assert "***@" in status["server"]

    await fleet.stop_all()
    for proc in fleet.engines.values():
        assert proc.returncode == 0
    everything = b"".join(p.read_bytes() for p in fleet.root.rglob("*") if p.is_file())
    assert b"fleet: joining unix://***@" in everything  # the log says where, masked
    assert SECRET.encode() not in everything  # logs, state.db, analytics, config
    assert SECRET not in str(status)


async def test_kill_9_mid_file_another_engine_resumes_and_verifies_it(
    fleet: Fleet, queue: FleetQueue
) -> None:
    [(model, primary)] = small_models(fleet.sim, 1, max_size=4 << 20)
    slow(fleet.sim, primary)
    await downloading_on_node_a(fleet, queue, model.id)
    fleet.signal("node-a", signal.SIGKILL)
    fleet.sim.faults.reset()
    await fleet.start("node-b")
    await fleet.cli("wait", "--timeout", "120")
    [f] = await fleet.files()
    assert (f["state"], f["finished_by"]) == ("completed", "node-b")
    assert sha256(fleet.lib / primary.name) == primary.sha256.upper()
    # node-b started from node-a's checkpoint on the shared folder: less than twice the file
    assert fleet.sim.stats.bytes_per_file[primary.id] < 2 * primary.size


async def test_a_partitioned_engine_is_fenced_out_when_it_returns(
    fleet: Fleet, queue: FleetQueue
) -> None:
    [(model, primary)] = small_models(fleet.sim, 1, max_size=4 << 20)
    slow(fleet.sim, primary, seconds=30)
    await downloading_on_node_a(fleet, queue, model.id)
    fleet.signal("node-a", signal.SIGSTOP)  # cut off: no renewal reaches the server
    await fleet.start("node-b")

    async def b_took_it() -> bool:
        return (await holder(queue))[0] == "node-b"

    await poll(b_took_it, timeout=LEASE * 10)
    fleet.sim.faults.reset()
    await fleet.cli("wait", "--timeout", "120")
    fleet.signal("node-a", signal.SIGCONT)
    a_part = fleet.lib / f"{primary.name}.{part_tag('node-a')}.part"
    await until(lambda: not a_part.exists(), timeout=30)  # dropped, not published
    [f] = await fleet.files()
    assert (f["state"], f["finished_by"]) == ("completed", "node-b")
    assert sha256(fleet.lib / primary.name) == primary.sha256.upper()
    log = (fleet.home("node-a") / "logs" / "civitai-tui.log").read_text()
    assert "held by another engine" in log or "another engine of the fleet holds" in log


async def test_a_pause_from_the_cli_stops_a_file_on_another_engine_within_one_renewal(
    fleet: Fleet, queue: FleetQueue
) -> None:
    [(model, primary)] = small_models(fleet.sim, 1, max_size=4 << 20)
    slow(fleet.sim, primary, seconds=60)
    job_id = await downloading_on_node_a(fleet, queue, model.id)
    await fleet.cli("pause", job_id)
    started = asyncio.get_running_loop().time()

    async def released() -> bool:
        [job] = await queue.jobs(files=True)
        return job.files[0].state == "paused"

    await poll(released, timeout=LEASE)  # a lapse would take the whole lease
    renewal = 0.3  # download.checkpoint_seconds: the renewal period
    assert asyncio.get_running_loop().time() - started < renewal + 1.5
    a_part = fleet.lib / f"{primary.name}.{part_tag('node-a')}.part"
    assert a_part.exists()  # paused keeps the partial data
    fleet.sim.faults.reset()
    await fleet.cli("resume", job_id)
    await fleet.cli("wait", "--timeout", "120")
    assert sha256(fleet.lib / primary.name) == primary.sha256.upper()


def test_part_tags_name_no_host_or_path() -> None:
    tag = part_tag("gpu-node-7:/home/alice/.local/share/civitai-tui")
    assert tag.startswith("f") and len(tag) == 11 and "alice" not in tag
