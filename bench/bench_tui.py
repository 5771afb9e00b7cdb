"""TUI benchmark: 1,000 jobs, 500 events/s, 120x40: frame time, UI RSS, start-up to first table.

It runs the real app headless against a scripted transport that sends what the
engine sends (a snapshot of 1,000 jobs, then batches of ``file_progress``
events at 500/s), and measures:

* frame time: the duration of each ``flush`` that painted (``batch_update``
  plus the DataTable render of the visible rows), median and p95;
* UI RSS after the run (``psutil``);
* start-up: from constructing the app to the first painted jobs table.

Run: ``.venv/bin/python -m bench.bench_tui``.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil

from civitai_tui.tui.app import make_app

JOBS, RATE, SECONDS = 1000, 500, 5.0
MIB = 1024 * 1024


def _jobs() -> list[dict[str, Any]]:
    return [
        {
            "id": f"j{i:05d}",
            "name": f"bulk model {i}",
            "state": "PROCESSING" if i < 50 else "PENDING",
            "priority": 0,
            "targets": [f"model:{i}"],
            "files_total": 1,
            "files_done": 0,
            "files_failed": 0,
            "total_bytes": 100 * MIB,
            "done_bytes": 0,
            "error": None,
            "files": [
                {
                    "key": f"j{i:05d}:f",
                    "name": f"m{i}.safetensors",
                    "size": 100 * MIB,
                    "done": 0,
                    "state": "downloading" if i < 50 else "pending",
                    "attempts": 1,
                }
            ],
        }
        for i in range(JOBS)
    ]


class Firehose:
    """A transport: the snapshot, then RATE progress events a second for SECONDS."""

    def __init__(self) -> None:
        self.snapshot = _jobs()
        self.finished = asyncio.Event()

    async def jobs(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in j.items() if k != "files"} for j in self.snapshot]

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "snapshot", "jobs": self.snapshot}
        tick, sent, start = 0.05, 0, time.monotonic()
        while time.monotonic() - start < SECONDS:
            batch = []
            for _ in range(int(RATE * tick)):
                i = sent % 50
                sent += 1
                batch.append(
                    {
                        "type": "file_progress",
                        "key": f"j{i:05d}:f",
                        "done": sent * 4096 % (100 * MIB),
                        "total": 100 * MIB,
                        "speed": 5e6 + sent,
                        "connections": 8,
                    }
                )
            yield {"type": "events", "events": batch}
            await asyncio.sleep(tick)
        self.finished.set()
        await asyncio.Event().wait()


async def main() -> None:
    transport = Firehose()
    created = time.monotonic()
    app = make_app(transport, Path(tempfile.mkdtemp()))  # type: ignore[arg-type]
    frames: list[float] = []
    flush = app.flush

    def timed_flush() -> None:
        before = app.frames
        t = time.perf_counter()
        flush()
        if app.frames > before:
            frames.append(time.perf_counter() - t)

    app.flush = timed_flush  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        while app.screen.query_one("#jobs").row_count < JOBS:
            await pilot.pause(0.01)
        await pilot.pause()  # the first paint of the table
        startup = time.monotonic() - created
        await asyncio.wait_for(transport.finished.wait(), SECONDS + 10)
        rss = psutil.Process().memory_info().rss
    frames.sort()
    print(f"jobs {JOBS}, events {RATE}/s for {SECONDS:.0f} s at 120x40")
    print(f"start-up to first painted table: {startup:.2f} s (target < 1.5 s)")
    print(
        f"frames painted: {len(frames)}; "
        f"frame time median {1000 * statistics.median(frames):.1f} ms, "
        f"p95 {1000 * frames[int(0.95 * (len(frames) - 1))]:.1f} ms (target < 50 ms)"
    )
    print(f"UI RSS: {rss / MIB:.0f} MiB (target < 150 MiB)")


if __name__ == "__main__":
    asyncio.run(main())
