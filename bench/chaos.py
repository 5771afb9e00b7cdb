"""The chaos run (``make chaos``): an N-file job, the engine SIGKILLed K times and SIGSTOPped once.

The simulator runs in this process with faults (a shared bandwidth cap, some
files whose connections reset every few megabytes, some answering 503 first).
The engine is a real subprocess on its own state dir; it is killed with
SIGKILL at random moments (``--seed``, printed, makes them repeatable), started
again (the job resumes from its checkpoints), and once stopped with SIGSTOP for
a few seconds and continued. When the job has run to the end, every file is
checked: present exactly once in the destination, SHA256 equal to the
catalogue's, no ``.part``/``.ctl``/temporary leftovers, ``PRAGMA
integrity_check`` of ``state.db`` and ``analytics.db`` is ``ok``, every job is
COMPLETED. It reports the bytes fetched again per kill two ways:

* **engine**: at each kill, the bytes already written to a ``.part`` outside the
  spans its control file records (received but not yet checkpointed: the engine
  must fetch them again), against one checkpoint of that file (the mean of what
  its last three checkpoints added; a file not checkpointed yet counts its own bytes);
* **network**: bytes the storage origin sent minus the files' sizes, which
  also counts what was still in socket buffers when the engine died.

Exit status 0 when every check passed and the engine re-fetched at most one
checkpoint per kill per active file (over the run; the files that lost more
than one checkpoint at some kill are listed).

    python -m bench.chaos --files 24 --kills 50 [--seed S] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from civitai_tui.download.control import load_control
from civitai_tui.engine.client import EngineClient
from civitai_tui.errors import CivitaiTuiError
from civitai_tui.simulator.server import Simulator, start_simulator

MiB = 1 << 20
TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
CHECKPOINT_SECONDS = 1.0
TOTAL_RATE = 6 * MiB  # the storage origin's bandwidth, shared by every connection
SAMPLE_SECONDS = 0.1
STOP_SECONDS = 5.0
LEFTOVER_SUFFIXES = (".part", ".ctl", ".tmp")


@dataclass
class Kill:
    """One SIGKILL: when, and what it cost the partial files."""

    at: float
    ran: float
    #: Files with a ``.part`` when the engine died.
    active_files: int
    #: Bytes written to the ``.part`` files but outside their checkpointed spans.
    unsaved: int
    #: One checkpoint of each active file (what its recent checkpoints added), summed.
    checkpoint: int
    #: Files whose unsaved bytes exceeded one checkpoint of theirs.
    over: list[str] = field(default_factory=list)


@dataclass
class Result:
    seed: int
    files: int
    kills: list[Kill] = field(default_factory=list)
    stopped_for: float = 0.0
    progressed_after_stop: bool = False
    file_bytes: int = 0
    served_bytes: int = 0
    checks: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def refetched(self) -> int:
        """Network view: bytes sent beyond the files' sizes."""
        return max(0, self.served_bytes - self.file_bytes)

    @property
    def unsaved(self) -> int:
        return sum(k.unsaved for k in self.kills)

    @property
    def bound(self) -> int:
        return sum(k.checkpoint for k in self.kills)

    @property
    def ok(self) -> bool:
        return all(self.checks.values()) and self.unsaved <= self.bound


class Checkpoints:
    """Watches the control files: the size of each file's last checkpoint."""

    def __init__(self, lib: Path) -> None:
        self.lib = lib
        #: name -> done bytes of the last checkpoint seen
        self.done: dict[str, int] = {}
        #: name -> what its last few checkpoints added
        self.steps: dict[str, list[int]] = {}

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_SECONDS)

    def sample(self) -> None:
        for ctl in self.lib.glob("*.part.ctl"):
            with contextlib.suppress(OSError, ValueError):
                state = load_control(ctl)
                if state is None:
                    continue
                done, before = state.done_bytes, self.done.get(ctl.name, 0)
                if done > before:
                    self.done[ctl.name] = done
                    self.steps.setdefault(ctl.name, []).append(done - before)
                    del self.steps[ctl.name][:-3]

    def one_checkpoint(self, part: Path) -> int | None:
        """What one checkpoint of the file adds: the mean of its last three (None: none yet)."""
        steps = self.steps.get(part.name + ".ctl")
        return sum(steps) // len(steps) if steps else None


def written_outside(part: Path, spans: list[tuple[int, int]]) -> int:
    """Bytes of ``part`` written (not zero) outside ``spans``; those bytes are zeroed after.

    The ``.part`` is preallocated with zeros and the simulator's bytes are random,
    so a non-zero byte outside the saved spans was received but not checkpointed
    (about 1 in 256 random bytes is zero: this undercounts by 0.4 %). The engine
    trusts only the spans of its control file, so zeroing the rest (while it is
    dead) changes nothing for it, and the next kill counts only its own run's bytes.
    """
    gaps, pos = [], 0
    size = part.stat().st_size
    for start, end in sorted(spans):
        if start > pos:
            gaps.append((pos, start))
        pos = max(pos, end)
    if pos < size:
        gaps.append((pos, size))
    total = 0
    with open(part, "r+b") as fh:
        for start, end in gaps:
            pos = start
            while pos < end:
                fh.seek(pos)
                block = fh.read(min(end - pos, 4 * MiB))
                if not block:
                    break
                written = len(block) - block.count(0)
                if written:
                    total += written
                    fh.seek(pos)
                    fh.write(bytes(len(block)))
                pos += len(block)
    return total


def kill_cost(lib: Path, checkpoints: Checkpoints, ran: float, at: float) -> Kill:
    """What the engine, just killed, must fetch again; against one checkpoint per file."""
    checkpoints.sample()
    kill = Kill(at=at, ran=ran, active_files=0, unsaved=0, checkpoint=0)
    for part in lib.glob("*.part"):
        ctl = part.with_name(part.name + ".ctl")
        state = load_control(ctl) if ctl.exists() else None
        lost = written_outside(part, state.done if state else [])
        one = checkpoints.one_checkpoint(part)
        allowed = lost if one is None else one  # not checkpointed yet: within its first
        kill.active_files += 1
        kill.unsaved += lost
        kill.checkpoint += allowed
        if lost > allowed:
            kill.over.append(f"{part.name}: {lost} unsaved > {allowed}")
    return kill


class Engine:
    """The engine subprocess for one state dir."""

    def __init__(self, home: Path, sim: Simulator) -> None:
        self.home = home
        self.env = sim.client_env(home, TOKEN)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.home / "engine.sock"

    async def start(self) -> None:
        with open(self.home / "chaos-engine.out", "ab") as log:  # the child keeps its copy
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "civitai_tui", "engine"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the engine exited at start ({self.proc.returncode})")
            with contextlib.suppress(CivitaiTuiError):
                async with EngineClient(self.socket, timeout=5) as client:
                    await client.status()
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError("the engine did not answer within 60 s")

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait)

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(CivitaiTuiError):
            async with EngineClient(self.socket) as client:
                await client.shutdown()
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 60)
        except TimeoutError:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)


def pick_models(sim: Simulator, count: int) -> list[int]:
    """``count`` ordinary models (one primary file each, no special behaviour)."""
    models = [m.id for m in sim.catalogue.ordinary_models()]
    if len(models) < count:
        raise SystemExit(f"the simulator has only {len(models)} ordinary models")
    return models[:count]


def set_faults(sim: Simulator, rng: random.Random, file_ids: list[int]) -> None:
    sim.faults.set(total_rate=TOTAL_RATE)
    for file_id in rng.sample(file_ids, max(1, len(file_ids) // 6)):
        sim.faults.set(file_id, total_rate=TOTAL_RATE, first_byte_latency=0.5)
    for file_id in rng.sample(file_ids, max(1, len(file_ids) // 6)):
        sim.faults.set(
            file_id, total_rate=TOTAL_RATE, fail_status=503, fail_count=3, retry_after=0.2
        )


async def job_state(engine: Engine) -> dict[str, Any]:
    async with EngineClient(engine.socket) as client:
        (job,) = await client.jobs()
        return job


def integrity(path: Path) -> str:
    if not path.exists():
        return "missing"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def check_library(sim: Simulator, lib: Path, details: dict[str, Any], result: Result) -> None:
    files = details["files"]
    names = [p.name for p in lib.iterdir()]
    expected = {}
    for f in files:
        file_id = int(f["key"].rsplit(":", 1)[1])
        expected[Path(f["path"] or "").name] = sim.catalogue.file(file_id)
    model_names = [n for n in names if not n.endswith(".civitai.json")]
    result.checks["every file present once"] = sorted(model_names) == sorted(expected)
    bad = [
        name
        for name, sim_file in expected.items()
        if not (lib / name).is_file()
        or hashlib.sha256((lib / name).read_bytes()).hexdigest().upper() != sim_file.sha256.upper()
    ]
    result.checks["SHA256 of every file"] = not bad
    result.problems += [f"wrong or missing: {n}" for n in bad]
    leftovers = [n for n in names if n.endswith(LEFTOVER_SUFFIXES) or n.startswith(".")]
    result.checks["no leftovers"] = not leftovers
    result.problems += [f"leftover: {n}" for n in leftovers]
    result.file_bytes = sum(f.size for f in expected.values())


async def chaos(files: int, kills: int, seed: int, work: Path) -> Result:
    rng = random.Random(seed)
    result = Result(seed=seed, files=files)
    started = time.monotonic()
    sim = await start_simulator(tokens={TOKEN}, file_size=12 * MiB)
    home, lib = work / "state", work / "lib"
    home.mkdir(parents=True)
    lib.mkdir()
    checkpoints = Checkpoints(lib)
    sampling = asyncio.create_task(checkpoints.run())
    (home / "config.toml").write_text(
        "[bulk]\nbatch_size = 4\nconcurrent_batches = 2\nstrategy = 'parallel'\n"
        f"[download]\ncheckpoint_seconds = {CHECKPOINT_SECONDS}\nconnections = 4\n"
    )
    engine = Engine(home, sim)
    try:
        models = pick_models(sim, files)
        await engine.start()
        async with EngineClient(engine.socket) as client:
            job = await client.add([f"model:{m}" for m in models], options={"dest": str(lib)})
            detail = await client.job(job["id"])
            while not detail["files"]:  # planning runs in the engine
                await asyncio.sleep(0.05)
                detail = await client.job(job["id"])
        set_faults(sim, rng, [int(f["key"].rsplit(":", 1)[1]) for f in detail["files"]])
        stop_at = rng.randrange(kills) if kills else -1
        for n in range(kills):
            ran = rng.uniform(0.3, 3.0)
            await asyncio.sleep(ran)
            if n == stop_at:
                await stop_and_continue(engine, sim, result)
            if (await job_state(engine))["state"] == "COMPLETED":
                print(f"the job completed after {n} kills", flush=True)
                break
            await engine.kill()
            kill = kill_cost(lib, checkpoints, ran, time.monotonic() - started)
            result.kills.append(kill)
            print(
                f"kill {n + 1}/{kills} after {ran:.1f} s: {kill.active_files} partial files, "
                f"{kill.unsaved / MiB:.2f} MiB unsaved, one checkpoint {kill.checkpoint / MiB:.2f}"
                f" MiB" + (f"; OVER: {kill.over}" if kill.over else ""),
                flush=True,
            )
            await engine.start()
        async with EngineClient(engine.socket) as client:
            waited = await client.wait(None, 900)
            details = await client.job(job["id"])
        result.checks["jobs COMPLETED"] = bool(waited["ok"]) and details["state"] == "COMPLETED"
        await engine.stop()
        check_library(sim, lib, details, result)
        for db in ("state.db", "analytics.db"):
            verdict = integrity(home / db)
            result.checks[f"integrity_check {db}"] = verdict == "ok"
            if verdict != "ok":
                result.problems.append(f"{db}: {verdict}")
        result.served_bytes = sim.stats.storage_bytes_sent
    finally:
        await engine.stop()
        sampling.cancel()
        await sim.close()
    result.seconds = time.monotonic() - started
    return result


async def stop_and_continue(engine: Engine, sim: Simulator, result: Result) -> None:
    """SIGSTOP the engine for a few seconds, SIGCONT it: bytes move again (or it finishes)."""
    assert engine.proc is not None
    engine.proc.send_signal(signal.SIGSTOP)
    await asyncio.sleep(STOP_SECONDS)
    before = sim.stats.storage_bytes_sent
    engine.proc.send_signal(signal.SIGCONT)
    result.stopped_for = STOP_SECONDS
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if sim.stats.storage_bytes_sent > before:
            result.progressed_after_stop = True
            break
        if (await job_state(engine))["state"] == "COMPLETED":  # nothing was left to move
            result.progressed_after_stop = True
            break
        await asyncio.sleep(0.05)
    result.checks["the engine works on after SIGSTOP/SIGCONT"] = result.progressed_after_stop
    print(f"SIGSTOP for {STOP_SECONDS:.0f} s, continued", flush=True)


def report(result: Result) -> str:
    kills = len(result.kills)
    active = sum(k.active_files for k in result.kills)
    over = sum(len(k.over) for k in result.kills)
    lines = [
        f"chaos run: seed {result.seed}, {result.files} files "
        f"({result.file_bytes / MiB:.0f} MiB), {kills} SIGKILLs, "
        f"SIGSTOP {result.stopped_for:.0f} s, {result.seconds:.0f} s",
        "",
        "| check | result |",
        "|---|---|",
        *(f"| {name} | {'ok' if ok else 'FAILED'} |" for name, ok in result.checks.items()),
        f"| at most one checkpoint re-fetched per kill per active file | "
        f"{'ok' if result.unsaved <= result.bound else 'FAILED'} |",
        "",
        f"- engine: {result.unsaved / MiB:.1f} MiB received but not checkpointed over "
        f"{kills} kills ({active / kills if kills else 0:.1f} partial files per kill): "
        f"{(result.unsaved / active if active else 0) / MiB:.2f} MiB per kill per file, "
        f"against one checkpoint of {(result.bound / active if active else 0) / MiB:.2f} MiB; "
        f"{over} of {active} partial files lost more than one checkpoint at their kill",
        f"- network: {result.served_bytes / MiB:.1f} MiB served for "
        f"{result.file_bytes / MiB:.1f} MiB of files, {result.refetched / MiB:.1f} MiB again "
        f"({(result.refetched / kills if kills else 0) / MiB:.2f} MiB per kill, socket "
        "buffers lost with the process included)",
        *(f"- problem: {p}" for p in result.problems),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=24, help="files in the job (default 24)")
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs (default 50)")
    parser.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"chaos seed {seed} (repeat with --seed {seed})", flush=True)
    with tempfile.TemporaryDirectory(prefix="civitai-chaos-") as work:
        result = asyncio.run(chaos(args.files, args.kills, seed, Path(work)))
    text = report(result)
    print(text)
    if args.json:
        data = {
            **asdict(result),
            "refetched": result.refetched,
            "unsaved": result.unsaved,
            "bound": result.bound,
        }
        args.json.write_text(json.dumps(data, indent=2))
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
