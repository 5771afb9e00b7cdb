"""The optimizer on servers it was never tuned on: a randomized profile sweep.

Each profile is drawn at random (``--seed``, a new one every run unless given,
so nothing can be tuned to a fixed list) from the behaviours real storage
shows: a per-connection cap (none, or 0.5-50 MB/s), a total cap (none, or
20-1000 MB/s), a connection limit per client of 2-16 enforced by 503 +
``Retry-After``, by 429, by closing the connection or by a hang (nginx's
``limit_conn``: requests in progress count), a time to first byte of 0-300 ms,
a reset every N MB, bursty pacing, and 1-20 files of 10 MB-1 GiB. Sizes (and
the reset distance) are scaled down so that each run lasts about
``--target`` seconds at the profile's physical limit: the shape of a profile
(file count, size ratios, limits) is kept, its bytes are not. Half the
profiles (``--https``) serve HTTPS from the simulator's throwaway CA, which every
client trusts (``SSL_CERT_FILE`` for ours, ``--ca-certificate`` for aria2c).

For every profile the simulator runs in its own process and each client
downloads every file once, in a fresh directory on tmpfs: ADAPTIVE cold (an
empty ``perf_hosts.json``) and warm (the cold run's), SPEED, EFFICIENCY and
MINIMAL, fixed 1/2/4/8/16/32/64 connections per file (the best of them is
the reference), and ``aria2c -x16 -s16 -k1M -j5``. The physical limit, where
one is defined, is the bytes over the least of the total cap and the
connection limit times the per-connection cap. The table, the seed and the
distribution of every ratio are printed; every run goes to
``bench/results/sweep-*.json``.

A run of 30 profiles with every client takes about an hour on a quiet 2-core
machine; ``--clients core`` (ADAPTIVE cold and warm, the fixed counts, aria2c)
leaves out the three other modes.

Usage: ``python -m bench.sweep --profiles N [--seed S] [--target S] [--https SHARE]
[--clients core|all|a,b,...]``,
``python -m bench.sweep --report bench/results/sweep-....json`` (a saved sweep, also a
partial one: the file is written after every profile).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import bench_perf
from bench.measure import run_measured
from bench.tools import Aria2c, Route

MB = 1_000_000
MIB = 1 << 20
RESULTS = Path(__file__).resolve().parent / "results"
FIXED = (1, 2, 4, 8, 16, 32, 64)
MODES = ("adaptive-cold", "adaptive-warm", "speed", "efficiency", "minimal")
CLIENTS = (*MODES, *(f"fixed-{n}" for n in FIXED), "aria2c")
CORE = ("adaptive-cold", "adaptive-warm", *(f"fixed-{n}" for n in FIXED), "aria2c")
#: The fastest a loopback download runs here (for sizing profiles without any cap).
LOOPBACK = 800 * MB
#: Our per-host ceiling (``performance.max_connections``) sizes capped profiles with no limit.
OUR_CEILING = 64
LIMIT_ANSWERS = ("503", "429", "reset", "hang")


@dataclass
class Profile:
    """One server behaviour and the files it serves."""

    index: int
    per_connection: int  # bytes/s, 0: none
    total: int  # bytes/s, 0: none
    limit: int  # connections per client, 0: none
    limit_answer: str
    ttfb: float
    reset_mb: float  # a reset every this many MB (scaled), 0: none
    bursty: float  # pacing burst (s), 0: smooth
    nominal: list[int]  # file sizes before scaling (bytes)
    sizes: list[int] = field(default_factory=list)  # what is served
    https: bool = False

    @property
    def physical_rate(self) -> float | None:
        """Bytes/s no client can beat, or None when more connections always add."""
        rates = [float(self.total)] if self.total else []
        if self.limit and self.per_connection:
            rates.append(float(self.limit * self.per_connection))
        return min(rates) if rates else None

    def expected_rate(self) -> float:
        """What a good client reaches (sizes the run): the physical rate, or our ceiling's."""
        physical = self.physical_rate
        if physical is not None:
            return min(physical, LOOPBACK)
        per = self.per_connection or LOOPBACK
        return min(LOOPBACK, per * OUR_CEILING)

    def knobs(self) -> dict[str, Any]:
        knobs: dict[str, Any] = {
            "per_connection_rate": self.per_connection,
            "total_rate": self.total,
            "first_byte_latency": self.ttfb,
            "pacing_burst": self.bursty,
        }
        if self.limit:
            knobs |= {
                "max_active_requests": self.limit,
                "limit_answer": self.limit_answer,
                "limit_retry_after": 1.0,
                "limit_hang_seconds": 60.0,
            }
        if self.reset_mb:
            knobs["reset_after_bytes"] = int(self.reset_mb * MB)
        return knobs

    def describe(self) -> str:
        parts = []
        if self.per_connection:
            parts.append(f"{self.per_connection / MB:.1f} MB/s/conn")
        if self.total:
            parts.append(f"total {self.total / MB:.0f} MB/s")
        if self.limit:
            parts.append(f"limit {self.limit} by {self.limit_answer}")
        if self.ttfb >= 0.005:
            parts.append(f"TTFB {self.ttfb * 1000:.0f} ms")
        if self.reset_mb:
            parts.append(f"reset/{self.reset_mb:.0f} MB")
        if self.bursty:
            parts.append(f"bursts {self.bursty:.1f} s")
        parts.append(f"{len(self.sizes)} files {sum(self.sizes) / MB:.0f} MB")
        return ("HTTPS: " if self.https else "") + ", ".join(parts)


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def draw(rng: random.Random, index: int, target: float, https: float = 0.5) -> Profile:
    """One random profile, its sizes scaled to about ``target`` seconds at its limit;
    HTTPS with probability ``https``."""
    profile = Profile(
        index=index,
        per_connection=int(log_uniform(rng, 0.5 * MB, 50 * MB)) if rng.random() < 0.65 else 0,
        total=int(log_uniform(rng, 20 * MB, 1000 * MB)) if rng.random() < 0.5 else 0,
        limit=rng.randint(2, 16) if rng.random() < 0.5 else 0,
        limit_answer=rng.choice(LIMIT_ANSWERS),
        ttfb=rng.uniform(0.0, 0.3) if rng.random() < 0.6 else 0.0,
        reset_mb=log_uniform(rng, 20, 500) if rng.random() < 0.25 else 0.0,
        bursty=rng.uniform(0.1, 0.5) if rng.random() < 0.25 else 0.0,
        nominal=[int(log_uniform(rng, 10 * MB, 1 << 30)) for _ in range(rng.randint(1, 20))],
    )
    scale = min(1.0, target * profile.expected_rate() / sum(profile.nominal))
    profile.sizes = [max(MIB, int(size * scale)) for size in profile.nominal]
    if profile.reset_mb:
        profile.reset_mb = max(2.0, profile.reset_mb * scale)
    profile.https = rng.random() < https
    return profile


@dataclass
class Run:
    profile: int
    client: str
    ok: bool
    seconds: float
    bound: bool  # timed out: the time is a lower bound
    host_connections: int | None
    bursts: int | None
    throttled: int | None
    probes: int | None
    rss_mib: float | None
    error: str | None


def command(
    client: str, urls: list[str], dest: Path, memory: Path, timeout: float, ca: str | None
) -> list[str]:
    if client == "aria2c":
        return Aria2c().commands(urls, dest, Route(ca_file=Path(ca) if ca else None))[0]
    cmd = [sys.executable, "-m", "bench.perf_client", "--dest", str(dest)]
    cmd += [arg for url in urls for arg in ("--url", url)]
    cmd += ["--timeout", str(timeout)]
    if client.startswith("fixed-"):
        return [*cmd, "--fixed", client.removeprefix("fixed-")]
    mode = client.split("-", 1)[0]
    cmd += ["--mode", mode]
    if client.startswith("adaptive"):
        cmd += ["--memory", str(memory)]
    return cmd


def measure(profile: Profile, client: str, sim: dict[str, Any], work: Path, timeout: float) -> Run:
    dest = work / "dest"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    memory = work / "perf_hosts.json"
    if client == "adaptive-cold":
        memory.unlink(missing_ok=True)
    set_faults(sim["api_url"], profile.knobs())
    ca = sim.get("ca_file")
    cmd = command(client, sim["urls"], dest, memory, timeout, ca)
    env = {**os.environ, "SSL_CERT_FILE": ca} if ca else None
    m = run_measured([cmd], log_dir=work / "logs", timeout=timeout + 20, env=env)
    out = (work / "logs" / "0.out").read_text(errors="replace").strip().splitlines()
    report = json.loads(out[-1]) if client != "aria2c" and out else {}
    sizes = sorted(p.stat().st_size for p in dest.iterdir() if p.suffix not in (".part", ".aria2"))
    complete = not m.timed_out and m.processes[0].exit_code == 0
    complete = complete and sizes == sorted(profile.sizes)
    seconds = report.get("seconds", m.wall_s)
    error = None
    if not complete:
        error = report.get("error") or (work / "logs" / "0.err").read_text()[-200:] or "failed"
    shutil.rmtree(dest, ignore_errors=True)
    return Run(
        profile.index,
        client,
        complete,
        seconds,
        not complete and (m.timed_out or "timeout" in (error or "")),
        report.get("host_connections"),
        report.get("bursts"),
        report.get("throttled"),
        report.get("probes"),
        report.get("rss_mib"),
        error,
    )


def simulator(
    sizes: list[int], tls: bool = False
) -> contextlib.AbstractContextManager[dict[str, Any]]:
    """The perf server serving one file of each of ``sizes`` bytes (HTTPS with ``tls``)."""
    return bench_perf.simulator(1, sizes, tls)


set_faults = bench_perf.set_faults


def measure_profile(
    profile: Profile, clients: list[str], sim: dict[str, Any], work: Path, timeout: float
) -> list[Run]:
    """Every client once. Fixed counts run from 64 down and stop at one twice as slow as
    the best so far (fewer connections than that only get slower: it cannot be the best);
    each has at most 2.5x the fastest run so far (slower cannot move a ratio above 0.4)."""
    runs: list[Run] = []
    best = fastest = math.inf
    fixed = sorted((c for c in clients if c.startswith("fixed-")), key=lambda c: -int(c[6:]))
    for client in [c for c in clients if not c.startswith("fixed-")] + fixed:
        if client.startswith("fixed-") and runs and runs[-1].client.startswith("fixed-"):
            last = runs[-1]
            if not last.ok and not last.bound:
                pass  # a failure (refusals, hangs) says nothing about fewer connections
            elif last.seconds > 2 * best:
                print(f"  {client}: skipped ({last.client} was twice the best)", file=sys.stderr)
                continue
        limit = min(timeout, max(8.0, 2.5 * fastest)) if client.startswith("fixed-") else timeout
        run = measure(profile, client, sim, work, limit)
        runs.append(run)
        if run.ok:
            fastest = min(fastest, run.seconds)
        if client.startswith("fixed-") and run.ok:
            best = min(best, run.seconds)
        print(f"  {client}: {cell([run], client)} s", file=sys.stderr)
    return runs


# ------------------------------------------------------------------ report
def time_of(runs: list[Run], client: str) -> float | None:
    """The client's seconds (None: failed; a timed-out run counts at its timeout)."""
    run = next((r for r in runs if r.client == client), None)
    if run is None or not (run.ok or run.bound):
        return None
    return run.seconds


def best_fixed(runs: list[Run]) -> tuple[str, float] | None:
    times = [(r.client, r.seconds) for r in runs if r.client.startswith("fixed-") and r.ok]
    return min(times, key=lambda t: t[1]) if times else None


@dataclass
class Row:
    profile: Profile
    runs: list[Run]

    def ratio(self, client: str, reference: float | None) -> float | None:
        """Speed of ``client`` relative to ``reference`` seconds (>1: faster; 0: it failed;
        None: no reference, or the client was not run)."""
        if not any(r.client == client for r in self.runs):
            return None
        mine = time_of(self.runs, client)
        if mine is None or reference is None:
            return None if reference is None else 0.0
        return reference / mine

    @property
    def physical_s(self) -> float | None:
        rate = self.profile.physical_rate
        return sum(self.profile.sizes) / rate if rate else None


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def cell(runs: list[Run], client: str) -> str:
    run = next((r for r in runs if r.client == client), None)
    if run is None:
        return ""
    if not run.ok:
        return f">{run.seconds:.1f}" if run.bound else "fail"
    return f"{run.seconds:.2f}"


def table(rows: list[Row]) -> str:
    lines = [
        "| # | profile | physical s | cold s | warm s | best fixed s | aria2c s | "
        "cold ÷ best fixed | warm ÷ best fixed | vs aria2c | cold ÷ physical | bursts |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        runs, best = row.runs, best_fixed(row.runs)
        best_s = best[1] if best else None
        cold = next((r for r in runs if r.client == "adaptive-cold"), None)
        physical = row.physical_s
        cold_t = time_of(runs, "adaptive-cold")
        lines.append(
            f"| {row.profile.index} | {row.profile.describe()} | {fmt(physical)} "
            f"| {cell(runs, 'adaptive-cold')} | {cell(runs, 'adaptive-warm')} "
            f"| {fmt(best_s)}{f' ({best[0]})' if best else ''} | {cell(runs, 'aria2c')} "
            f"| {fmt(row.ratio('adaptive-cold', best_s))} "
            f"| {fmt(row.ratio('adaptive-warm', best_s))} "
            f"| {fmt(row.ratio('adaptive-cold', time_of(runs, 'aria2c')))} "
            f"| {fmt(cold_t / physical if cold_t and physical else None)} "
            f"| {cold.bursts if cold and cold.bursts is not None else ''} |"
        )
    return "\n".join(lines)


def distribution(name: str, values: list[float]) -> str:
    if not values:
        return f"- {name}: no data"
    ordered = sorted(values)
    decile = ordered[max(0, math.ceil(len(ordered) / 10) - 1)]
    return (
        f"- {name}: median {statistics.median(ordered):.2f}, worst {ordered[0]:.2f}, "
        f"10th percentile {decile:.2f}, best {ordered[-1]:.2f} (n={len(ordered)})"
    )


def summary(rows: list[Row]) -> list[str]:
    """The issue's targets over the sweep, each with its numbers."""
    out: list[str] = []
    for label, client in (("cold", "adaptive-cold"), ("warm", "adaptive-warm")):
        ratios = versus_best(rows, client)
        out.append(distribution(f"ADAPTIVE {label} ÷ best fixed (speed ratio)", ratios))
        if ratios:
            median, worst = statistics.median(ratios), min(ratios)
            met = median >= 0.95 and worst >= 0.80
            out.append(f"  - target median ≥ 0.95 and worst ≥ 0.80: {'met' if met else 'NOT met'}")
        for scheme, https in (("HTTP", False), ("HTTPS", True)):
            part = versus_best([row for row in rows if row.profile.https is https], client)
            out.append("  " + distribution(f"{scheme} profiles", part))
    vs_aria = [
        r
        for row in rows
        if (r := row.ratio("adaptive-cold", time_of(row.runs, "aria2c"))) is not None
    ]
    out.append(
        distribution("ADAPTIVE cold vs aria2c where both finished (aria2c s ÷ ours)", vs_aria)
    )
    aria_failed = [
        row
        for row in rows
        if time_of(row.runs, "aria2c") is None and any(r.client == "aria2c" for r in row.runs)
    ]
    ours_ok = [row for row in aria_failed if time_of(row.runs, "adaptive-cold") is not None]
    compared = len(vs_aria) + len(aria_failed)
    if compared:
        wins = sum(r >= 1.0 for r in vs_aria) + len(ours_ok)
        out.append(
            f"  - at least as fast as aria2c on {wins}/{compared} profiles ({wins / compared:.0%};"
            f" aria2c failed on {len(aria_failed)}, ours completed {len(ours_ok)} of those; "
            f"target ≥ 90 %: {'met' if wins >= 0.9 * compared else 'NOT met'})"
        )
    several = [
        row.ratio("adaptive-cold", time_of(row.runs, "aria2c"))
        for row in rows
        if row.profile.per_connection and len(row.profile.sizes) > 1 and not row.profile.limit
    ]
    several = [r for r in several if r is not None]
    if several:
        worst = min(several)
        out.append(
            f"  - several files per capped host ({len(several)} profiles): worst "
            f"{1 / worst if worst else math.inf:.2f}x aria2c's wall time "
            f"(target ≤ 1.0x: {'met' if worst >= 1.0 else 'NOT met'})"
        )
    limited = [row for row in rows if row.profile.limit and row.physical_s]
    if limited:
        over = [
            t / row.physical_s
            for row in limited
            if (t := time_of(row.runs, "adaptive-cold")) and row.physical_s
        ]
        bursts = [
            r.bursts for row in limited for r in row.runs if r.client == "adaptive-cold" and r.ok
        ]
        out.append(distribution("connection-limited: ADAPTIVE cold ÷ physical time", over))
        out.append(
            f"  - within 1.15x on {sum(o <= 1.15 for o in over)}/{len(over)}; "
            f"refusal bursts per run: {sorted(b for b in bursts if b is not None)} "
            "(target ≤ 1)"
        )
    out += mode_summary(rows)
    return out


def versus_best(rows: list[Row], client: str) -> list[float]:
    """``client``'s speed relative to the best fixed count, per profile where one finished."""
    return [
        r
        for row in rows
        if (best := best_fixed(row.runs)) and (r := row.ratio(client, best[1])) is not None
    ]


def mode_summary(rows: list[Row]) -> list[str]:
    out = []
    tput, conns = [], []
    for row in rows:
        speed = next((r for r in row.runs if r.client == "speed" and r.ok), None)
        eff = next((r for r in row.runs if r.client == "efficiency" and r.ok), None)
        if speed and eff and speed.host_connections and eff.host_connections:
            tput.append(speed.seconds / eff.seconds)
            conns.append(eff.host_connections / speed.host_connections)
    out.append(distribution("EFFICIENCY ÷ SPEED throughput", tput))
    out.append(distribution("EFFICIENCY ÷ SPEED peak connections", conns))
    if tput:
        both = sum(t >= 0.9 and c <= 0.25 for t, c in zip(tput, conns, strict=True))
        out.append(
            f"  - ≥ 90 % throughput with ≤ 25 % connections on {both}/{len(tput)} profiles; "
            f"≥ 90 % throughput on {sum(t >= 0.9 for t in tput)}/{len(tput)}"
        )
    minimal = [r for row in rows for r in row.runs if r.client == "minimal" and r.ok]
    if minimal:
        peak = max(r.host_connections or 0 for r in minimal)
        probes = sum(r.probes or 0 for r in minimal)
        rss = max(r.rss_mib or 0.0 for r in minimal)
        out.append(
            f"- MINIMAL: peak {peak} connections per host (target ≤ 2), {probes} probing "
            f"decisions (target 0), peak RSS {rss:.0f} MiB (target ≤ 60)"
        )
    return out


def worst_rows(rows: list[Row], count: int = 5) -> list[Row]:
    """The profiles where ADAPTIVE cold did worst against the best fixed count."""

    def key(row: Row) -> float:
        best = best_fixed(row.runs)
        ratio = row.ratio("adaptive-cold", best[1]) if best else None
        return ratio if ratio is not None else math.inf

    return sorted(rows, key=key)[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__)
    parser.add_argument("--profiles", type=int, default=30)
    parser.add_argument("--seed", type=int, help="default: a new one, printed")
    parser.add_argument("--target", type=float, default=3.0, help="seconds per run at the limit")
    parser.add_argument(
        "--clients", default="all", help="all, core (no SPEED/EFFICIENCY/MINIMAL) or a list"
    )
    parser.add_argument("--https", type=float, default=0.5, help="share of HTTPS profiles")
    parser.add_argument(
        "--work", default="/dev/shm" if os.path.isdir("/dev/shm") else None, help="tmpfs"
    )
    parser.add_argument("--report", type=Path, help="print the report of a saved sweep")
    args = parser.parse_args(argv)
    if args.report:
        report(*load(args.report))
        return 0
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    named = {"all": ",".join(CLIENTS), "core": ",".join(CORE)}.get(args.clients, args.clients)
    clients = [c for c in named.split(",") if c != "aria2c" or shutil.which("aria2c")]
    print(f"seed {seed}", file=sys.stderr)
    rows: list[Row] = []
    started = time.monotonic()
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"sweep-{seed}-{stamp}.json"
    with tempfile.TemporaryDirectory(prefix="sweep-", dir=args.work) as tmp:
        work = Path(tmp)
        for index in range(1, args.profiles + 1):
            profile = draw(rng, index, args.target, args.https)
            physical = profile.expected_rate()
            timeout = max(30.0, 8 * sum(profile.sizes) / physical)
            print(f"profile {index}: {profile.describe()}", file=sys.stderr)
            with simulator(profile.sizes, profile.https) as sim:
                runs = measure_profile(profile, clients, sim, work, timeout)
            rows.append(Row(profile, runs))
            save(out, seed, args.target, rows, time.monotonic() - started)  # after every one
    report(seed, rows, time.monotonic() - started)
    return 0


def save(path: Path, seed: int, target: float, rows: list[Row], seconds: float) -> None:
    data = {
        "seed": seed,
        "target": target,
        "seconds": seconds,
        "load": os.getloadavg(),
        "cpus": os.cpu_count(),
        "profiles": [asdict(row.profile) for row in rows],
        "runs": [asdict(run) for row in rows for run in row.runs],
    }
    path.write_text(json.dumps(data, indent=1))


def load(path: Path) -> tuple[int, list[Row], float]:
    """A saved sweep (``--report``): its seed, rows and duration."""
    data = json.loads(path.read_text())
    runs = [Run(**r) for r in data["runs"]]
    rows = [
        Row(Profile(**p), [r for r in runs if r.profile == p["index"]]) for p in data["profiles"]
    ]
    return data["seed"], rows, data.get("seconds", 0.0)


def report(seed: int, rows: list[Row], seconds: float) -> None:
    print(f"## Sweep, seed {seed}: {len(rows)} profiles, {seconds:.0f} s\n")
    print(table(rows))
    print()
    for line in summary(rows):
        print(line)
    print("\nWorst profiles (ADAPTIVE cold ÷ best fixed):")
    print(table(worst_rows(rows)))


if __name__ == "__main__":
    sys.exit(main())
