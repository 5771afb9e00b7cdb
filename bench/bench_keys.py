"""Keypress-to-paint in a real terminal: the UI in tmux with 1,000 jobs, downloads running.

The simulator runs in this process, the engine is a real subprocess (``Engine``
of :mod:`bench.bench_bulk`) with 1,000 queued jobs, two of them downloading
rate-capped files; ``civitai-tui`` runs in a detached tmux session at 120x40.
Each action sends its keys with ``tmux send-keys`` and reads the screen with
``tmux capture-pane -e`` (colours included, so a moved cursor counts) until it
shows what the key should paint; the time from the send to that capture is one
sample. Actions: mode switch 1 -> 2 and 2 -> 1, cursor down, open and close the
filter, open and close the add dialog. Target: p90 <= 100 ms for each.

Run: ``.venv/bin/python -m bench.bench_keys [--jobs 1000] [--rounds 20]``; needs tmux.
The figures include tmux's own capture (a few ms per poll).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.bench_bulk import TOKEN, Engine
from civitai_tui.simulator.server import start_simulator

SESSION = "civitai-bench-keys"
TARGET_P90_MS = 100.0
#: Between actions: Textual waits this long after ESC to tell a lone Escape from a sequence.
SETTLE = 0.25
RESULTS = Path(__file__).parent / "results"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-e", "-t", SESSION)


def wait_screen(check: Callable[[str], bool], timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = screen()
        if check(text):
            return text
        if time.monotonic() > deadline:
            raise TimeoutError(f"the screen never showed what was expected:\n{plain(text)}")


def press(keys: list[str], check: Callable[[str, str], bool]) -> float:
    """Send ``keys``; ms until the screen satisfies ``check(before, now)``."""
    before = screen()
    started = time.perf_counter()
    tmux("send-keys", "-t", SESSION, *keys)
    wait_screen(lambda now: check(before, now))
    return 1000 * (time.perf_counter() - started)


def changed(before: str, now: str) -> bool:
    return before != now


Check = Callable[[str, str], bool]


def plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;:]*m", "", text)


def shows(marker: str) -> Callable[[str, str], bool]:
    return lambda before, now: marker in plain(now)


def gone(marker: str) -> Callable[[str, str], bool]:
    return lambda before, now: marker not in plain(now)


#: name: (keys, when it is painted, keys that undo it, when that is painted). The
#: undo is not measured; every check names what the key paints, since the two
#: running downloads repaint their rows all along.
ACTIONS: dict[str, tuple[list[str], Check, list[str], Check]] = {
    "mode 1->2": (["2"], shows("network:"), ["1"], shows("Progress")),
    "mode 2->1": (["2"], shows("network:"), [], shows("")),  # set up below, then "1"
    "cursor down": (["Down"], changed, [], shows("")),
    "filter open": (["/"], shows("filter: words"), ["Escape"], gone("filter: words")),
    "add dialog": (["a"], shows("Add downloads"), ["Escape"], gone("Add downloads")),
}


async def run(jobs: int, rounds: int) -> dict[str, object]:
    if shutil.which("tmux") is None:
        raise SystemExit("bench_keys needs tmux")
    tmp = Path(tempfile.mkdtemp(prefix="bench-keys-"))
    sim = await start_simulator(tokens={TOKEN}, regular_models=jobs, file_size=16 * 1024)
    large = sim.catalogue.specials.large
    sim.faults.set(large.file_id, per_connection_rate=200_000, total_rate=400_000)
    engine = Engine(sim, tmp / "home")
    try:
        async with engine as client:
            ids = [m.id for m in sim.catalogue.models if not m.mode][: jobs - 2]
            for model_id in ids:  # waiting (paused) jobs ...
                await client.add([f"model:{model_id}"], options={"dest": str(tmp / "q")})
            await client.queue_action("pause-all")
            for n in range(2):  # ... and two downloading all along
                dest = {"dest": str(tmp / f"a{n}")}
                await client.add([f"model:{large.model_id}"], options=dest, priority=5)
            env = " ".join(f"{k}={v}" for k, v in engine.env.items() if k.startswith("CIVITAI"))
            tmux(
                "new-session", "-d", "-s", SESSION, "-x", "120", "-y", "40",
                f"env {env} TERM=xterm-256color {sys.executable} -m civitai_tui",
            )  # fmt: skip
            try:
                return await asyncio.to_thread(_measure, jobs, rounds)
            finally:
                tmux("kill-session", "-t", SESSION)
    finally:
        await sim.close()


def _measure(jobs: int, rounds: int) -> dict[str, object]:
    wait_screen(lambda s: f"{jobs} jobs" in plain(s), timeout=60)
    time.sleep(1.0)  # let the first full paint and resync settle
    samples: dict[str, list[float]] = {name: [] for name in ACTIONS}
    for _ in range(rounds):
        for name, (keys, check, undo, undone) in ACTIONS.items():
            try:
                if name == "mode 2->1":  # from the Performance screen, unmeasured
                    press(keys, check)
                    keys, check = ["1"], shows("Progress")
                samples[name].append(press(keys, check))
                if undo:
                    press(undo, undone)
            except TimeoutError as exc:
                raise TimeoutError(f"{name}: {exc}") from None
            time.sleep(SETTLE)  # an escape key's sequence timeout, the next key apart
    out: dict[str, object] = {"jobs": jobs, "rounds": rounds, "size": "120x40"}
    for name, values in samples.items():
        values.sort()
        p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
        out[name] = {
            "median_ms": round(statistics.median(values), 1),
            "p90_ms": round(p90, 1),
            "max_ms": round(max(values), 1),
            "ok": p90 <= TARGET_P90_MS,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    os.environ.pop("TMUX", None)
    result = asyncio.run(run(args.jobs, args.rounds))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"keys-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
