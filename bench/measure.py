"""Run a client (one process or several in parallel) and measure what it cost.

Wall time runs from the first spawn to the last exit. CPU comes from
``os.wait4``: on Linux the rusage of a reaped child includes the descendants it
reaped itself, so a client's whole process tree is counted. Exits are awaited
on pidfds, so waiting neither polls nor sleeps, and a client that outlives
``timeout`` is killed with its process group.

Peak RSS cannot come from that same ``wait4``: a child's ``ru_maxrss`` starts
at its parent's RSS (the pre-exec memory counts), so every client would look at
least as big as this harness. Each command is therefore wrapped in GNU
``time -f %M``, a ~1 MiB process whose own child starts small; without GNU time
peak RSS is reported as unknown (``None``) rather than wrong.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class ProcessCost:
    """What one client process used."""

    exit_code: int
    cpu_s: float
    max_rss_mib: float | None


@dataclass(frozen=True)
class Measurement:
    """One client run: wall time, summed CPU, and RSS (max over processes and their sum)."""

    wall_s: float
    processes: tuple[ProcessCost, ...]
    timed_out: bool

    @property
    def cpu_s(self) -> float:
        return sum(p.cpu_s for p in self.processes)

    @property
    def peak_rss_mib(self) -> float | None:
        sizes = [p.max_rss_mib for p in self.processes]
        return None if None in sizes else max(s for s in sizes if s is not None)

    @property
    def rss_sum_mib(self) -> float | None:
        sizes = [p.max_rss_mib for p in self.processes]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    @property
    def exit_codes(self) -> tuple[int, ...]:
        return tuple(p.exit_code for p in self.processes)


def run_measured(
    commands: list[list[str]],
    *,
    log_dir: Path,
    timeout: float,
    env: dict[str, str] | None = None,
) -> Measurement:
    """Start every command at once, wait for all, return their cost.

    Each command's stdout and stderr go to ``log_dir/<index>.out`` / ``.err``,
    GNU time's report to ``log_dir/<index>.rss``.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    wrap = gnu_time_available()  # probed before the clock starts
    started = time.perf_counter()
    pids = [_spawn(command, log_dir, index, env, wrap) for index, command in enumerate(commands)]
    pidfds = {os.pidfd_open(pid): index for index, pid in enumerate(pids)}
    costs: dict[int, ProcessCost] = {}
    timed_out = False
    ended = started
    try:
        while pidfds:
            remaining = started + timeout - time.perf_counter()
            ready, _, _ = select.select(list(pidfds), [], [], max(0.0, remaining))
            ended = time.perf_counter()
            if not ready:
                timed_out = True
                _kill_groups(pids[index] for index in pidfds.values())
                ready = list(pidfds)  # killed: wait4 below returns promptly
            for fd in ready:
                index = pidfds.pop(fd)
                os.close(fd)
                costs[index] = _reap(pids[index], log_dir / f"{index}.rss")
    finally:
        for fd in pidfds:
            os.close(fd)
    return Measurement(
        wall_s=ended - started,
        processes=tuple(costs[index] for index in range(len(pids))),
        timed_out=timed_out,
    )


def _spawn(
    command: list[str], log_dir: Path, index: int, env: dict[str, str] | None, wrap: bool
) -> int:
    if wrap:
        command = [GNU_TIME, "-f", "%M", "-o", str(log_dir / f"{index}.rss"), *command]
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_dir / f"{index}.out"), flags, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, str(log_dir / f"{index}.err"), flags, 0o644),
    ]
    return os.posix_spawnp(
        command[0], command, os.environ if env is None else env, file_actions=actions, setsid=True
    )


@functools.cache
def gnu_time_available() -> bool:
    """Whether ``/usr/bin/time`` is GNU time (it takes ``-f %M -o FILE``)."""
    try:
        probe = subprocess.run(
            [GNU_TIME, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return False
    return "GNU" in probe.stdout + probe.stderr


def _reap(pid: int, rss_report: Path) -> ProcessCost:
    _, status, usage = os.wait4(pid, 0)
    return ProcessCost(
        exit_code=os.waitstatus_to_exitcode(status),
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mib=_reported_rss_mib(rss_report),
    )


def _reported_rss_mib(rss_report: Path) -> float | None:
    """GNU time's ``%M`` (KiB) is the last line; earlier lines note a non-zero exit."""
    try:
        last = rss_report.read_text().strip().splitlines()[-1]
    except (OSError, IndexError):
        return None
    return int(last) / 1024 if last.isdigit() else None


def _kill_groups(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
