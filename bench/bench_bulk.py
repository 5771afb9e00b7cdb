"""Bulk engine benchmark: files per second, API calls per file, engine RSS, CPU per GB.

Run on demand: ``.venv/bin/python -m bench.bench_bulk``. The simulator runs in
this process; the engine is a real subprocess (``civitai-tui engine``) so its
RSS and CPU are its own. Scenarios:

* ``small``: one bulk job (``user:`` targets over the whole catalogue) of about
  1,000 small files;
* ``large``: one job of 50 files of 20 MB;
* ``queue``: 1,000 jobs queued at once: engine RSS and the time ``ls`` takes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from civitai_tui.engine.client import EngineClient
from civitai_tui.simulator.server import Simulator, start_simulator

TOKEN = "0123456789abcdef0123456789abcdef"
MIB = 1024 * 1024


class Engine:
    """A ``civitai-tui engine`` subprocess with its own state dir."""

    def __init__(self, sim: Simulator, home: Path) -> None:
        self.home = home
        self.env = sim.client_env(home, TOKEN)
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> EngineClient:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text("[analytics]\nenabled = true\n")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "civitai_tui", "engine", env=self.env
        )
        socket = self.home / "engine.sock"
        deadline = time.monotonic() + 20
        while not socket.exists():
            assert time.monotonic() < deadline, "engine did not start"
            await asyncio.sleep(0.05)
        self.client = EngineClient(socket, timeout=600)
        return await self.client.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await self.client.shutdown()
        await self.client.close()
        assert self.proc is not None
        await self.proc.wait()

    def usage(self) -> tuple[float, float]:
        """(peak RSS MiB, CPU seconds) of the engine so far."""
        assert self.proc is not None
        proc = psutil.Process(self.proc.pid)
        peak_kib = next(
            int(line.split()[1])
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            if line.startswith("VmHWM:")
        )
        cpu = proc.cpu_times()
        return peak_kib / 1024, cpu.user + cpu.system


SPECIALS = "bench-specials"


def set_aside_specials(sim: Simulator) -> None:
    """Give the catalogue's quirky files (malicious, early access, 512 MiB ...) a
    creator of their own, so ``user:`` targets reach only the uniform files."""
    ordinary = {m.id for m in sim.catalogue.ordinary_models()}
    for model in sim.catalogue.models:
        if model.id not in ordinary:
            model.creator = SPECIALS


async def bulk_job(models: int, file_size: int, label: str, tmp: Path) -> dict[str, object]:
    sim = await start_simulator(tokens={TOKEN}, regular_models=models, file_size=file_size)
    try:
        set_aside_specials(sim)
        creators = sorted({m.creator for m in sim.catalogue.models if m.creator != SPECIALS})
        engine = Engine(sim, tmp / label)
        async with engine as client:
            api_before = sim.stats.api_requests
            started = time.perf_counter()
            job = await client.add(
                [f"user:{c}" for c in creators],
                options={"dest": str(tmp / label / "lib"), "nsfw": True},
            )
            result = await client.wait([job["id"]], timeout=1800)
            elapsed = time.perf_counter() - started
            detail = await client.job(job["id"])
            rss, cpu = engine.usage()
        files = detail["files_done"]
        gigabytes = detail["done_bytes"] / 1e9
        return {
            "scenario": label,
            "files": files,
            "failed": detail["files_failed"],
            "ok": result["ok"],
            "seconds": elapsed,
            "files/s": files / elapsed,
            "MB/s": detail["done_bytes"] / 1e6 / elapsed,
            "API calls/file": (sim.stats.api_requests - api_before) / max(files, 1),
            "engine peak RSS MiB": rss,
            "CPU s/GB": cpu / gigabytes if gigabytes else float("nan"),
        }
    finally:
        await sim.close()


async def queue_of_jobs(count: int, tmp: Path) -> dict[str, object]:
    sim = await start_simulator(tokens={TOKEN}, regular_models=count, file_size=16 * 1024)
    try:
        ids = [m.id for m in sim.catalogue.models if not m.mode][:count]
        engine = Engine(sim, tmp / "queue")
        async with engine as client:
            await client.queue_action("pause-all")
            for model_id in ids:
                await client.add([f"model:{model_id}"], options={"dest": str(tmp / "q")})
            await client.queue_action("pause-all")
            timings = []
            for _ in range(20):
                started = time.perf_counter()
                jobs = await client.jobs()
                timings.append(time.perf_counter() - started)
            rss, _ = engine.usage()
        return {
            "scenario": "queue",
            "jobs": len(jobs),
            "ls median ms": 1000 * statistics.median(timings),
            "ls max ms": 1000 * max(timings),
            "engine peak RSS MiB": rss,
        }
    finally:
        await sim.close()


def table(rows: list[dict[str, object]]) -> str:
    lines = []
    for row in rows:
        cells = ", ".join(
            f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
        )
        lines.append(f"- {cells}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp_name:
        tmp = Path(tmp_name)
        rows = []
        if "small" in args.only:
            rows.append(await bulk_job(args.small_files, args.small_size * 1024, "small", tmp))
        if "large" in args.only:
            rows.append(await bulk_job(50, 20 * MIB, "large", tmp))
        if "queue" in args.only:
            rows.append(await queue_of_jobs(args.jobs, tmp))
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="small,large,queue")
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--small-size", type=int, default=64, help="KiB")
    parser.add_argument("--jobs", type=int, default=1000)
    asyncio.run(main(parser.parse_args()))
