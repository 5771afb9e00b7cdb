"""Benchmark of fleet mode (run on demand; prints a table and, with --json, a JSON object).

    .venv/bin/python -m bench.bench_fleet [--files 3000] [--jobs 10000] [--json]

On a fresh Valkey/Redis server (``valkey-server`` or ``redis-server`` on PATH, a Unix
socket in a temp folder):

* **claim latency** p50/p99: 3 engines' worth of clients (one connection each) claim and
  complete ``--files`` queued files concurrently; the time of each claim round trip;
* **server memory per 10,000 queued files**: ``used_memory`` before and after queuing
  ``--jobs`` one-file jobs with a realistic request record, scaled to 10,000;
* **``ls`` of the fleet's jobs**: the job views ``ls --json`` prints, built in process
  for ``--jobs`` jobs (target: under 200 ms for 10,000), and the whole ``ls --json``
  command as a subprocess;
* **recovery after ``kill -9``**: two engine processes on the simulator, a slow file held
  by the first, ``kill -9``; the seconds until the second holds it and until it is
  complete (target: resumed within the lease + 5 s). ``--lease`` sets the lease.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from civitai_tui.fleet.commands import views
from civitai_tui.fleet.connection import parse_fleet_url
from civitai_tui.fleet.queue import FleetQueue
from civitai_tui.fleet.registry import engines as engines_of
from tests.redis_server import RedisServer, server_binary

ENGINES = 3


def request_record(i: int) -> str:
    """A request as big as a real CivitAI file's."""
    return json.dumps(
        {
            "info": {
                "key": f"k{i}",
                "name": f"model_{i:06d}_v1.safetensors",
                "size": 2_132_626_066,
                "host": "b2.civitai.com",
                "job_id": None,
                "model_id": 100000 + i,
                "version_id": 200000 + i,
                "file_id": 300000 + i,
                "model_name": f"Some Model Name {i}",
                "version_name": "v1.0 (fp16 pruned)",
                "model_type": "Checkpoint",
                "base_model": "SDXL 1.0",
                "creator": "some_creator",
            },
            "source": {"kind": "civitai", "version_id": 200000 + i, "file_id": 300000 + i},
            "dest_dir": "/srv/models/Stable-diffusion/SDXL 1.0/Some Model Name",
            "filename": f"model_{i:06d}_v1.safetensors",
            "expected_size": 2_132_626_066,
            "sha256": "A" * 64,
            "blake3": None,
            "remote_scans": ["Success", "Success"],
            "file_format": "SafeTensor",
            "preview_url": None,
        }
    )


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def claim_latency(url: str, files: int) -> dict[str, float]:
    setup = FleetQueue(parse_fleet_url(url, "bench").client())
    await setup.add_job([request_record(i) for i in range(files)], name="claims")
    await setup.client.aclose()
    latencies: list[float] = []

    async def engine(n: int) -> None:
        queue = FleetQueue(parse_fleet_url(url, "bench").client())
        try:
            while True:
                started = time.perf_counter()
                claim = await queue.claim(f"bench-{n}", 30)
                latencies.append(time.perf_counter() - started)
                if claim is None:
                    return
                await queue.finish(claim, "completed", {})
        finally:
            await queue.client.aclose()

    await asyncio.gather(*(engine(n) for n in range(ENGINES)))
    return {
        "claims": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * pct(latencies, 99),
    }


async def memory_and_ls(url: str, jobs: int, home: Path) -> dict[str, float]:
    queue = FleetQueue(parse_fleet_url(url, "bench").client())
    try:
        await queue.client.flushdb()
        before = (await queue.client.info("memory"))["used_memory"]
        for i in range(jobs):
            await queue.add_job([request_record(i)], name=f"job {i}")
        after = (await queue.client.info("memory"))["used_memory"]
        started = time.perf_counter()
        shown = await views(queue, with_files=True)
        in_process = time.perf_counter() - started
    finally:
        await queue.client.aclose()
    assert len(shown) == jobs
    env = {**os.environ, "CIVITAI_TUI_HOME": str(home), "CIVITAI_TUI_FLEET": url}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "civitai_tui", "ls", "--json"], env=env, capture_output=True
    )
    command = time.perf_counter() - started
    assert done.returncode == 0, done.stderr.decode()
    return {
        "bytes_per_10k_files": (after - before) * 10_000 / jobs,
        "ls_in_process_ms": 1000 * in_process,
        "ls_command_ms": 1000 * command,
    }


async def recovery(url: str, lease: float, root: Path) -> dict[str, float]:
    from civitai_tui.simulator.server import start_simulator

    token = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    sim = await start_simulator(tokens={token})
    engines: dict[str, subprocess.Popen[bytes]] = {}
    queue = FleetQueue(parse_fleet_url(url, "bench").client())
    try:
        await queue.client.flushdb()
        model = next(
            m
            for m in sim.catalogue.ordinary_models()
            if (p := m.versions[0].primary_file()) and 2 << 20 < p.size < 8 << 20
        )
        primary = model.versions[0].primary_file()
        assert primary is not None
        sim.faults.set(primary.id, per_connection_rate=max(primary.size // 160, 1))

        def start(name: str) -> None:
            home = root / name
            home.mkdir(parents=True, exist_ok=True)
            (home / "config.toml").write_text(
                f"[fleet]\nname = '{name}'\nlease = {lease}\n[analytics]\nenabled = false\n"
            )
            env = {**sim.client_env(home, token), "CIVITAI_TUI_FLEET": url}
            engines[name] = subprocess.Popen(
                [sys.executable, "-m", "civitai_tui", "engine"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        async def holder() -> tuple[str | None, str, int]:
            jobs = await queue.jobs(files=True)
            if not jobs or not jobs[0].files:
                return None, "", 0
            f = jobs[0].files[0]
            return f.engine, f.state, int(f.checkpoint.get("done", 0))

        start("node-a")
        client_home = root / "client"
        client_home.mkdir()
        env = {**sim.client_env(client_home, token), "CIVITAI_TUI_FLEET": url}
        add = await asyncio.create_subprocess_exec(  # the simulator runs on this loop
            *(sys.executable, "-m", "civitai_tui", "add", f"model:{model.id}", "-d", str(root)),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await add.communicate()
        assert add.returncode == 0, err.decode()
        while (await holder())[0] != "node-a" or (await holder())[2] == 0:
            await asyncio.sleep(0.05)
        start("node-b")
        while not any(e.name == "node-b" and e.alive for e in await engines_of(queue.client)):
            await asyncio.sleep(0.05)  # node-b up and idle before the kill
        engines["node-a"].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        sim.faults.reset()
        while (await holder())[0] != "node-b":
            await asyncio.sleep(0.05)
        resumed = time.monotonic() - killed
        while (await holder())[1] != "completed":
            await asyncio.sleep(0.05)
        completed = time.monotonic() - killed
        return {
            "lease_s": lease,
            "resumed_after_s": resumed,
            "completed_after_s": completed,
            "bytes_sent_per_file_size": sim.stats.bytes_per_file[primary.id] / primary.size,
        }
    finally:
        for proc in engines.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        await queue.client.aclose()
        await sim.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=3000, help="files claimed (latency)")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs queued (memory, ls)")
    parser.add_argument("--lease", type=float, default=5.0, help="lease of the recovery run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    binary = server_binary()
    if binary is None:
        sys.exit("needs valkey-server or redis-server on PATH")
    with tempfile.TemporaryDirectory(prefix="rdsb", dir="/tmp") as folder:
        server = RedisServer(binary, Path(folder))
        server.start()
        try:
            results: dict[str, Any] = {
                "server": binary,
                "load_average": os.getloadavg(),
                "claim": await claim_latency(server.url, args.files),
                "queue": await memory_and_ls(server.url, args.jobs, Path(folder) / "ls-home"),
                "recovery": await recovery(server.url, args.lease, Path(folder) / "rec"),
            }
        finally:
            server.stop(kill=True)
    if args.json:
        print(json.dumps(results))
        return
    claim, queue, rec = results["claim"], results["queue"], results["recovery"]
    print(f"server: {binary}; load average {results['load_average'][0]:.1f}")
    print(
        f"claim latency, {ENGINES} engines, {claim['claims']} claims: "
        f"p50 {claim['p50_ms']:.2f} ms, p99 {claim['p99_ms']:.2f} ms"
    )
    print(f"server memory per 10,000 queued files: {queue['bytes_per_10k_files'] / 2**20:.1f} MiB")
    print(
        f"ls of {args.jobs} fleet jobs: {queue['ls_in_process_ms']:.0f} ms in process, "
        f"{queue['ls_command_ms']:.0f} ms as `ls --json`"
    )
    print(
        f"kill -9 recovery (lease {rec['lease_s']:g} s): resumed elsewhere after "
        f"{rec['resumed_after_s']:.1f} s, complete after {rec['completed_after_s']:.1f} s, "
        f"{rec['bytes_sent_per_file_size']:.2f}x the file's bytes sent"
    )


if __name__ == "__main__":
    asyncio.run(main())
