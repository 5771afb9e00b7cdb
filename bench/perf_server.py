"""The simulator in its own process, for the optimizer benchmark.

Prints one JSON line (``api_url`` and a signed ``url`` for the 128 MiB file),
then serves until stdin closes. Profiles set fault knobs over HTTP
(``POST /_sim/faults``).

Usage: ``python -m bench.perf_server``
"""

from __future__ import annotations

import asyncio
import json
import sys

from civitai_tui.simulator.server import start_simulator

FILE_NAME = "largeRealism_v10.safetensors"


async def serve() -> None:
    sim = await start_simulator(tokens=set())
    file = next(f for f in sim.catalogue.files() if f.name == FILE_NAME)
    info = {"api_url": sim.api_url, "url": sim.signed_url(file.id), "size": file.size}
    print(json.dumps(info), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the harness closes our stdin
    await sim.close()


if __name__ == "__main__":
    asyncio.run(serve())
