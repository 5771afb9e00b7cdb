"""The simulator in its own process, for the optimizer benchmark.

Prints one JSON line (``api_url``, a signed ``url`` for one file of ``--size``
MiB and its ``size``), then serves until stdin closes. Profiles set fault knobs
over HTTP (``POST /_sim/faults``).

Usage: ``python -m bench.perf_server [--size MIB]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from civitai_tui.simulator.server import start_simulator

MiB = 1 << 20


async def serve(size: int) -> None:
    sim = await start_simulator(tokens=set(), regular_models=1, file_size=size)
    file = next(f for f in sim.catalogue.files() if f.size == size)
    info = {"api_url": sim.api_url, "url": sim.signed_url(file.id), "size": file.size}
    print(json.dumps(info), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the harness closes our stdin
    await sim.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.perf_server", description=__doc__)
    parser.add_argument("--size", type=int, default=1024, help="file size in MiB")
    asyncio.run(serve(parser.parse_args(argv).size * MiB))


if __name__ == "__main__":
    main()
