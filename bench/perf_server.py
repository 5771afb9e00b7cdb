"""The simulator in its own process, for the optimizer benchmark.

Prints one JSON line (``api_url``, a signed ``url`` for one file of ``--size``
MiB and its ``size``; with ``--sizes B,B,...`` also ``urls`` and ``sizes``, one
file of each size in bytes; with ``--tls`` the storage origin serves HTTPS and
``ca_file`` is the CA to trust), then serves until stdin closes. Profiles set fault
knobs over HTTP (``POST /_sim/faults``).

Usage: ``python -m bench.perf_server [--size MIB] [--sizes BYTES,...] [--tls]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from civitai_tui.simulator.content import ContentKind, ContentSpec, FileContent
from civitai_tui.simulator.server import start_simulator

MiB = 1 << 20


async def serve(size: int, sizes: list[int], tls: bool = False) -> None:
    models = max(1, len(sizes))
    sim = await start_simulator(
        tokens=set(), regular_models=models, file_size=size, tls="storage" if tls else None
    )
    regular = [f for f in sim.catalogue.files() if f.size == size]
    file = regular[0]
    info: dict[str, object] = {
        "api_url": sim.api_url,
        "url": sim.signed_url(file.id),
        "size": file.size,
        "ca_file": str(sim.ca.ca_file) if sim.ca else None,
    }
    if sizes:
        chosen = regular[: len(sizes)]
        for sim_file, wanted in zip(chosen, sizes, strict=True):  # same names, new bytes
            spec = ContentSpec(sim_file.id, wanted, ContentKind.SAFETENSORS)
            sim_file.content = FileContent(spec)
        info["urls"] = [sim.signed_url(f.id) for f in chosen]
        info["sizes"] = [f.size for f in chosen]
    print(json.dumps(info), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the harness closes our stdin
    await sim.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.perf_server", description=__doc__)
    parser.add_argument("--size", type=int, default=1024, help="file size in MiB")
    parser.add_argument("--sizes", default="", help="also serve files of these sizes (bytes)")
    parser.add_argument("--tls", action="store_true", help="the storage origin serves HTTPS")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    asyncio.run(serve(args.size * MiB, sizes, args.tls))


if __name__ == "__main__":
    main()
