"""The optimizer benchmark: every client on the issue's seven network profiles, one table.

Profiles are fault knobs of the simulator (run in its own process,
``bench/perf_server.py``) serving one file of ``--size`` MiB (default 1 GiB, a
checkpoint: long enough that the result is the steady state an optimizer finds,
not the first second of it), written to tmpfs (``--work``) so the disk does not
blur the network. For each profile every client downloads it ``--repeat`` times
(order rotated each round; the table shows the median run): ADAPTIVE (our
default), each other mode, fixed connection counts, ``aria2c -x16 -s16 -k1M``,
and the plain one-connection downloader (``bench/plain.py``). A run that
reaches ``--timeout`` is stopped and not repeated; its speed is then an upper
bound (``<``). Then the issue's targets are checked and the optimizer's own CPU
overhead is measured (idle, and busy from the runs).

Usage: ``python -m bench.bench_perf [--profiles 1,2,...] [--clients ...] [--timeout S]
[--size MIB] [--repeat N] [--short-repeat N] [--work DIR]``
Markdown goes to stdout, progress to stderr, every run to ``bench/results/perf-*.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.measure import run_measured
from bench.tools import Aria2c

MB = 1_000_000
RESULTS = Path(__file__).resolve().parent / "results"

PROFILES: dict[str, tuple[str, dict[str, Any]]] = {
    "1": ("unlimited", {}),
    "2": (
        "10 MB/s per conn, 200 MB/s total",
        {"per_connection_rate": 10 * MB, "total_rate": 200 * MB},
    ),
    "3": (
        "2 MB/s per conn, 100 MB/s total",
        {"per_connection_rate": 2 * MB, "total_rate": 100 * MB},
    ),
    "4": (
        "flaky: reset every 20 MB, 503 + Retry-After",
        {"reset_after_bytes": 20 * MB, "fail_status": 503, "fail_count": 6, "retry_after": 1},
    ),
    "5": (
        "150 ms first byte, 5 MB/s per conn",
        {"first_byte_latency": 0.15, "per_connection_rate": 5 * MB},
    ),
    "6": ("503 above 6 connections", {"max_connections": 6}),
    "7": ("CPU half busy (1 of 2 cores)", {}),
}
#: Profiles whose best client needs longer than ``--timeout`` (64 x 2 MB/s still takes 11 s).
TIMEOUTS = {"3": 40.0}
#: Profiles whose runs last about a second. Their speeds are bimodal on a 2-core
#: machine: about 1.5 GB/s, or 0.5-0.8 GB/s in a quarter of the runs, for every
#: client alike (fixed counts too; where the scheduler puts the server and the
#: client is the likely cause). A median of 3 lands on the slow mode about one
#: time in six, so these get ``--short-repeat`` rounds.
SHORT_PROFILES = {"1", "6", "7"}
MODES = ("adaptive", "speed", "efficiency", "minimal")
FIXED = (1, 2, 4, 8, 16, 32)
CLIENTS = (*MODES, *(f"fixed-{n}" for n in FIXED), "aria2c", "plain")


@dataclass
class Run:
    profile: str
    client: str
    ok: bool
    seconds: float
    mb_per_s: float
    bound: bool  # timed out: the speed is an upper bound
    cpu_s: float
    download_cpu_s: float | None  # ours: the download alone, without start-up
    connections: int | None
    throttled: int | None
    optimizer_cpu_s: float | None
    error: str | None


def command(client: str, url: str, dest: Path, timeout: float) -> list[str]:
    py = [sys.executable, "-m"]
    if client in MODES:
        return [
            *py,
            "bench.perf_client",
            "--url",
            url,
            "--dest",
            str(dest),
            "--mode",
            client,
            "--timeout",
            str(timeout),
        ]
    if client.startswith("fixed-"):
        return [
            *py,
            "bench.perf_client",
            "--url",
            url,
            "--dest",
            str(dest),
            "--fixed",
            client.removeprefix("fixed-"),
            "--timeout",
            str(timeout),
        ]
    if client == "aria2c":
        return Aria2c().commands([url], dest)[0]  # the download bench's flags, one URL
    return [*py, "bench.plain", "--dest", str(dest), url]


def measure(profile: str, client: str, url: str, size: int, work: Path, timeout: float) -> Run:
    dest = work / "dest"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    cmd = command(client, url, dest, timeout)
    m = run_measured([cmd], log_dir=work / "logs", timeout=timeout + 15)
    out = (work / "logs" / "0.out").read_text(errors="replace").strip().splitlines()
    report = json.loads(out[-1]) if client in MODES or client.startswith("fixed-") else {}
    files = [p for p in dest.iterdir() if not p.name.endswith((".part", ".ctl", ".aria2"))]
    complete = not m.timed_out and m.processes[0].exit_code == 0 and len(files) == 1
    complete = complete and files[0].stat().st_size == size
    seconds = report.get("seconds", m.wall_s)
    bound = not complete and (m.timed_out or "timeout" in (report.get("error") or ""))
    error = report.get("error") or (
        None if complete else (work / "logs" / "0.err").read_text()[-300:]
    )
    shutil.rmtree(dest, ignore_errors=True)
    moved = (report.get("bytes") or size) if bound else size  # ours report what they moved
    return Run(
        profile,
        client,
        complete,
        seconds,
        moved / seconds / MB,
        bound,
        m.cpu_s,
        report.get("download_cpu_s"),
        report.get("connections")
        or (16 if client == "aria2c" else 1 if client == "plain" else None),
        report.get("throttled"),
        report.get("optimizer_cpu_s"),
        error if not complete else None,
    )


@contextlib.contextmanager
def simulator(
    size_mib: int, sizes: list[int] | None = None, tls: bool = False
) -> Iterator[dict[str, Any]]:
    """``bench.perf_server`` in its own process (files of ``size_mib``, or of ``sizes``
    bytes each; HTTPS storage with ``tls``); yields its address record; a server that
    will not stop is killed."""
    command = [sys.executable, "-m", "bench.perf_server", "--size", str(size_mib)]
    if sizes:
        command += ["--sizes", ",".join(map(str, sizes))]
    if tls:
        command.append("--tls")
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a hung handler: the server is ours to end
            proc.kill()
            proc.wait()


def set_faults(api_url: str, knobs: dict[str, Any]) -> None:
    urllib.request.urlopen(urllib.request.Request(api_url + "/_sim/faults", method="DELETE"))
    body = json.dumps({"faults": knobs}).encode()
    request = urllib.request.Request(
        api_url + "/_sim/faults", body, method="POST", headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request)


@contextlib.contextmanager
def busy_core(active: bool) -> Iterator[None]:
    """Profile 7: one process spinning on one core for the profile's duration."""
    if not active:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def measure_profile(
    profile: str, clients: list[str], sim: dict[str, Any], work: Path, args: argparse.Namespace
) -> list[Run]:
    """Rounds of every client (``args.repeat``, more on short profiles), the order rotated.

    A client that timed out is not run again: its speed is a bound already.
    """
    runs: list[Run] = []
    bounded: set[str] = set()
    rounds = max(args.repeat, args.short_repeat) if profile in SHORT_PROFILES else args.repeat
    for round_no in range(rounds):
        shift = round_no % len(clients)
        for client in clients[shift:] + clients[:shift]:
            if client in bounded:
                continue
            set_faults(sim["api_url"], PROFILES[profile][1])  # fresh fail_count per run
            timeout = max(args.timeout, TIMEOUTS.get(profile, 0.0))
            run = measure(profile, client, sim["url"], sim["size"], work, timeout)
            print(f"profile {profile} {client}: {fmt_speed(run)} MB/s", file=sys.stderr)
            runs.append(run)
            if run.bound:
                bounded.add(client)
    return runs


def median_run(runs: list[Run], profile: str, client: str) -> Run:
    """The run with the median speed (failed runs count as 0 MB/s)."""
    mine = sorted(
        (r for r in runs if r.profile == profile and r.client == client),
        key=lambda r: r.mb_per_s if r.ok or r.bound else 0.0,
    )
    return mine[(len(mine) - 1) // 2]


def fmt_speed(run: Run) -> str:
    return ("<" if run.bound else "") + f"{run.mb_per_s:.1f}" if run.ok or run.bound else "fail"


def table(runs: list[Run]) -> str:
    lines = [
        "| profile | client | ok | s | MB/s | CPU s | download CPU s | peak conns/file "
        "| 429/503 | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        name = f"{r.profile}: {PROFILES[r.profile][0]}"
        note = (r.error or "").splitlines()[0][:60] if r.error else ""
        lines.append(
            f"| {name} | {r.client} | {'yes' if r.ok else 'no'} | {r.seconds:.1f} | {fmt_speed(r)} "
            f"| {r.cpu_s:.2f} | {'' if r.download_cpu_s is None else f'{r.download_cpu_s:.2f}'} "
            f"| {r.connections if r.connections is not None else ''} "
            f"| {r.throttled if r.throttled is not None else ''} | {note} |"
        )
    return "\n".join(lines)


def rate(runs: list[Run], client: str) -> float:
    return next((r.mb_per_s if r.ok else 0.0 for r in runs if r.client == client), 0.0)


def targets(profile: str, runs: list[Run]) -> list[str]:
    """The issue's targets for one profile, each as 'met'/'NOT met' with the numbers."""

    def verdict(ok: bool, text: str) -> str:
        return f"{'met' if ok else 'NOT met'}: {text}"

    out = []
    adaptive = rate(runs, "adaptive")
    fixed = {r.client: r.mb_per_s for r in runs if r.client.startswith("fixed-") and r.ok}
    if fixed:
        best_name = max(fixed, key=fixed.__getitem__)
        out.append(
            verdict(
                adaptive >= 0.9 * fixed[best_name],
                f"ADAPTIVE {adaptive:.1f} MB/s >= 90 % of {best_name} {fixed[best_name]:.1f}",
            )
        )
    aria = [r for r in runs if r.client == "aria2c"]
    if aria:
        out.append(
            verdict(
                adaptive >= rate(runs, "aria2c"),
                f"ADAPTIVE >= aria2c ({rate(runs, 'aria2c'):.1f} MB/s"
                f"{', aria2c failed' if not aria[0].ok else ''})",
            )
        )
    plain = [r for r in runs if r.client == "plain"]
    if profile in ("2", "3") and plain:
        p = plain[0]
        ratio = adaptive / p.mb_per_s if p.mb_per_s else 0
        out.append(
            verdict(ratio >= 3, f"ADAPTIVE / plain = {'>' if p.bound else ''}{ratio:.1f}x >= 3x")
        )
    if profile == "6":
        a = next((r for r in runs if r.client == "adaptive"), None)
        if a:
            out.append(
                verdict(
                    a.ok and (a.connections or 99) <= 6,
                    f"ADAPTIVE completed={a.ok}, peak {a.connections} connections, "
                    f"{a.throttled} 503 answers",
                )
            )
    if profile == "7":
        s = next((r for r in runs if r.client == "speed"), None)
        e = next((r for r in runs if r.client == "efficiency"), None)
        if s and e and s.ok and e.ok:
            for label, e_cpu, s_cpu in (
                ("process", e.cpu_s, s.cpu_s),
                ("download", e.download_cpu_s or 0.0, s.download_cpu_s or 1.0),
            ):
                out.append(
                    verdict(
                        e_cpu <= 0.7 * s_cpu and e.mb_per_s >= 0.8 * s.mb_per_s,
                        f"EFFICIENCY {label} CPU {e_cpu:.2f} s vs SPEED {s_cpu:.2f} s "
                        f"({e_cpu / s_cpu:.0%}), throughput {e.mb_per_s / s.mb_per_s:.0%}",
                    )
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_perf", description=__doc__)
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument("--size", type=int, default=1024, help="file size in MiB")
    parser.add_argument(
        "--work",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where the files are written (default /dev/shm: tmpfs, so the disk's "
        "writeback does not blur what the network profiles measure)",
    )
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle overhead run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds per profile (a timed-out client runs once)"
    )
    parser.add_argument(
        "--short-repeat",
        type=int,
        default=7,
        help="rounds for the profiles whose runs last about a second (1, 6, 7)",
    )
    args = parser.parse_args(argv)
    profiles = args.profiles.split(",")
    clients = [c for c in args.clients.split(",") if c != "aria2c" or shutil.which("aria2c")]
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="perf-bench-", dir=args.work) as tmp,
        simulator(args.size) as sim,
    ):
        work = Path(tmp)
        for profile in profiles:
            with busy_core(profile == "7"):
                runs += measure_profile(profile, clients, sim, work, args)
        idle = json.loads(
            subprocess.run(
                [sys.executable, "-m", "bench.perf_client", "--idle", str(args.idle)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    medians = [median_run(runs, p, c) for p in profiles for c in clients]
    print(table(medians))
    print()
    for profile in profiles:
        for line in targets(profile, [r for r in medians if r.profile == profile]):
            print(f"- profile {profile}: {line}")
    busy = [(r.optimizer_cpu_s, r.seconds) for r in runs if r.optimizer_cpu_s is not None]
    busy_rate = sum(c for c, _ in busy) / max(1e-9, sum(s for _, s in busy)) * 3600
    print(
        f"- optimizer overhead: idle {idle['cpu_s_per_hour']:.1f} CPU-s per hour; "
        f"busy {busy_rate:.1f} CPU-s per hour of downloading (its own code only)"
    )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    data = {
        "runs": [asdict(r) for r in runs],
        "idle": idle,
        "busy_cpu_s_per_hour": busy_rate,
        "load": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    (RESULTS / f"perf-{stamp}.json").write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
