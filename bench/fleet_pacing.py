"""Shared API pacing across engine processes: does the fleet hold the rate, and reach it?

    .venv/bin/python -m bench.fleet_pacing [--rate 50] [--seconds 5] [--engines 1 3]

Starts a redis-server (``tests.redis_server``), then for each engine count runs that
many processes, each asking the shared ``/api/download`` bucket (burst 10) for
slots in a loop. Printed per count: slots given, the rate reached over the
steady part (after the first second), the most slots in any one second (the
bound is rate + burst), and the round trip of one take (the Lua script) p50/p99.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.redis_server import RedisServer, server_binary

WORKER = """
import asyncio, json, sys, time
from redis.asyncio import Redis
from civitai_tui.fleet.keyid import KeyIds
from civitai_tui.fleet.link import LimitsLink
from civitai_tui.fleet.pacing import SharedRateLimiter

async def main(url, name, rate, seconds):
    redis = Redis.from_url(url, decode_responses=True)
    link = LimitsLink()
    lim = SharedRateLimiter(redis, link, KeyIds(redis, link, lambda: "bench-key"), name,
                            "download", rate, 10)
    take, slots, trips = lim._shared_take, [], []
    async def timed():
        started = time.perf_counter()
        answer = await take()
        trips.append(time.perf_counter() - started)
        return answer
    lim._shared_take = timed
    end = time.time() + seconds
    while time.time() < end:
        await lim.acquire()
        slots.append(lim.last_slot / 1000)
    print(json.dumps({"slots": slots, "trips": trips}))
    await redis.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
"""


def most_in_window(stamps: list[float], window: float = 1.0) -> int:
    stamps, most, lo = sorted(stamps), 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= window:
            lo += 1
        most = max(most, hi - lo + 1)
    return most


def run(url: str, engines: int, rate: float, seconds: float) -> dict[str, float]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, f"bench{engines}-{i}", str(rate), str(seconds)],
            stdout=subprocess.PIPE,
        )
        for i in range(engines)
    ]
    runs = [json.loads(p.communicate()[0]) for p in procs]
    slots = sorted(s for r in runs for s in r["slots"])
    trips = sorted(t for r in runs for t in r["trips"])
    steady = [s for s in slots if s >= slots[0] + 1.0]
    span = (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    return {
        "engines": engines,
        "slots": len(slots),
        "rate_reached": (len(steady) - 1) / span if span else 0.0,
        "most_in_1s": most_in_window(slots),
        "take_p50_ms": 1000 * statistics.median(trips),
        "take_p99_ms": 1000 * trips[min(len(trips) - 1, int(len(trips) * 0.99))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--engines", type=int, nargs="+", default=[1, 3])
    args = parser.parse_args()
    binary = server_binary()
    if binary is None:
        sys.exit("needs valkey-server or redis-server on PATH")
    with tempfile.TemporaryDirectory(prefix="rds", dir="/tmp") as folder:
        server = RedisServer(binary, Path(folder))
        server.start()
        try:
            print(f"shared rate {args.rate:g}/s, burst 10, {args.seconds:g} s per run")
            print("engines  slots  reached/s  most in 1 s  take p50 ms  take p99 ms")
            for count in args.engines:
                r = run(server.url, count, args.rate, args.seconds)
                print(
                    f"{count:7d}  {r['slots']:5d}  {r['rate_reached']:9.1f}  "
                    f"{r['most_in_1s']:11d}  {r['take_p50_ms']:11.2f}  {r['take_p99_ms']:11.2f}"
                )
                time.sleep(1.1)  # the bucket refills between runs
        finally:
            server.stop(kill=True)


if __name__ == "__main__":
    main()
