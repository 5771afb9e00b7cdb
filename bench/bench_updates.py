"""Library update check benchmark: API calls per file, time and engine CPU, cold and cached.

Run on demand: ``.venv/bin/python -m bench.bench_updates [--files 2000] [--rate 10]``.
The simulator runs in this process with ~2,000 one-KiB files; they are written
to a library folder, and a real ``civitai-tui engine`` subprocess checks it twice
(``GET /v1/library``): cold (every file hashed, looked up by hash 100 a call, the
models 100 a call, paced by ``api.requests_per_second``) and again within
``browse.cache_ttl`` (no API call expected). Prints calls, calls per file, wall
seconds and the engine's CPU seconds for each run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.bench_bulk import Engine
from civitai_tui.simulator.server import start_simulator


async def run(files: int, rate: float) -> list[dict[str, object]]:
    sim = await start_simulator(tokens=set(), regular_models=files // 2 + 100, file_size=1024)
    rows: list[dict[str, object]] = []
    try:
        chosen = [f for f in sim.catalogue.files() if f.size == 1024][:files]
        with tempfile.TemporaryDirectory(prefix="bench-updates-") as tmp:
            lib = Path(tmp, "lib")
            for index, file in enumerate(chosen):
                folder = lib / f"d{index % 20}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{file.id}.safetensors").write_bytes(file.read(0, file.size))
            engine = Engine(sim, Path(tmp, "home"))
            async with engine as client:
                await client.set_config("api.requests_per_second", rate)
                for label in ("cold", "cached"):
                    calls, cpu_before = sim.stats.api_requests, engine.usage()[1]
                    started = time.perf_counter()
                    entries = await client.library([str(lib)])
                    wall = time.perf_counter() - started
                    made = sim.stats.api_requests - calls
                    rows.append(
                        {
                            "run": label,
                            "files": len(entries),
                            "known": sum(e.known for e in entries),
                            "api_calls": made,
                            "calls_per_file": round(made / max(1, len(entries)), 4),
                            "wall_s": round(wall, 2),
                            "engine_cpu_s": round(engine.usage()[1] - cpu_before, 2),
                        }
                    )
    finally:
        await sim.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=10.0, help="api.requests_per_second")
    args = parser.parse_args()
    for row in asyncio.run(run(args.files, args.rate)):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
