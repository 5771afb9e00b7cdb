"""The bench harness: times aria2c, curl, ours and the plain downloader side by side.

For each profile (a: unlimited, b: every connection capped, over HTTP; c and d
the same over HTTPS from nginx with a private CA; e: c through a loopback proxy)
it starts the server in its own process, then runs every tool once per round, rotating the
order each round so no tool always goes first. Each run downloads every file
into an empty directory; its files are checked (sizes, and the SHA256 of one
file) and deleted before the next run. Medians and paired ratios against the
anchors go to stdout as a Markdown table, followed by the download targets
(``bench.targets``: met or missed, CPU s per GB over HTTPS, the load average),
and, with every run, to a JSON file.

``python -m bench.run --help`` lists the options; ``make bench BENCH_ARGS=...``
passes them through. Exit status: 0 if every run was good, 1 if a run failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.corpus import Corpus, ensure_corpus, sha256_of, verify_download, warm_page_cache
from bench.measure import GNU_TIME, gnu_time_available, run_measured
from bench.pacing import parse_rate
from bench.report import RunRecord, markdown_table, summarize, write_json
from bench.server import ServerProcess
from bench.targets import check as check_targets
from bench.targets import markdown as targets_markdown
from bench.tls import NginxProcess, ProxyProcess, nginx_missing
from bench.tools import DEFAULT_TOOLS, DIRECT, TOOL_NAMES, Route, Tool, all_tools
from civitai_tui.simulator.tls import SimulatorCA

PROFILES = ("a", "b", "c", "d", "e")
#: Profiles served over HTTPS by nginx (``bench.tls``), and the one through the proxy.
HTTPS_PROFILES = frozenset({"c", "d", "e"})
CAPPED_PROFILES = frozenset({"b", "d"})
DEFAULT_SERVED = Path(tempfile.gettempdir()) / "civitai-tui-bench" / "served"
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Session:
    """Everything one run of one tool needs."""

    corpus: Corpus
    work: Path
    timeout: float
    digests: dict[str, str]

    def expected_sha256(self, name: str) -> str:
        if name not in self.digests:
            self.digests[name] = sha256_of(self.corpus.path(name))
        return self.digests[name]


def _csv(choices: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        picked = [part.strip() for part in text.split(",") if part.strip()]
        unknown = sorted(set(picked) - set(choices))
        if not picked or unknown:
            raise argparse.ArgumentTypeError(f"pick from {', '.join(choices)} (got {text!r})")
        return list(dict.fromkeys(picked))

    return parse


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _rate(text: str) -> str:
    try:
        parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser(tool_names: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Time our downloader against aria2c and curl on a local server.",
    )
    parser.add_argument("--files", type=_positive(int), default=10, help="files served (10)")
    parser.add_argument("--size", type=_positive(float), default=100, help="MB per file (100)")
    parser.add_argument("--repeat", type=_positive(int), default=3, help="rounds; medians (3)")
    parser.add_argument(
        "--profiles",
        type=_csv(PROFILES),
        default=list(PROFILES),
        help="a = unlimited, b = per-connection cap (HTTP); c, d = the same over HTTPS "
        "(nginx); e = c through a loopback proxy (a,b,c,d,e)",
    )
    parser.add_argument(
        "--only",
        type=_csv(tool_names),
        default=list(DEFAULT_TOOLS),
        help=f"tools to run, of {','.join(tool_names)} ({','.join(DEFAULT_TOOLS)})",
    )
    parser.add_argument("--cap-rate", type=_rate, default="20MB", help="profile b cap (20MB)")
    parser.add_argument("--timeout", type=_positive(float), default=600, help="s per run (600)")
    parser.add_argument("--served-dir", type=Path, default=DEFAULT_SERVED, help="served files")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS, help="JSON output")
    parser.add_argument(
        "--ours-exe",
        type=Path,
        default=Path(sys.executable).parent / "civitai-tui",
        help="the civitai-tui executable to time",
    )
    return parser


def _server_cpu(server: Any, proxy: ProxyProcess | None) -> float:
    """CPU of the server (and of the proxy, when there is one) so far."""
    if isinstance(server, NginxProcess):
        total = server.cpu_seconds()
    else:
        times = psutil.Process(server.pid).cpu_times()
        total = times.user + times.system
    return total + (proxy.cpu_seconds() if proxy is not None else 0.0)


def _failure_detail(log_dir: Path) -> str:
    tails = [
        line
        for err in sorted(log_dir.glob("*.err"))
        for line in err.read_text(errors="replace").strip().splitlines()[-1:]
    ]
    return "; ".join(tails[:3])


def run_once(
    session: Session,
    server: Any,
    tool: Tool,
    profile: str,
    round_no: int,
    route: Route = DIRECT,
    proxy: ProxyProcess | None = None,
) -> RunRecord:
    """One timed, verified download of the whole corpus by ``tool``."""
    dest, state = session.work / "dest", session.work / "state"
    logs = session.work / "logs" / f"{profile}-{tool.name}-{round_no}"
    for stale in (dest, state):
        shutil.rmtree(stale, ignore_errors=True)
    dest.mkdir(parents=True)
    # Every run writes the whole corpus: flush what the last one left dirty, or its
    # backlog lands on whoever runs next (most on a tool that fsyncs its files).
    os.sync()
    urls = [server.url(name) for name in session.corpus.names]
    cpu_before = _server_cpu(server, proxy)
    cost = run_measured(
        tool.commands(urls, dest, route),
        log_dir=logs,
        timeout=session.timeout,
        env=tool.env(state, route),
    )
    server_cpu = _server_cpu(server, proxy) - cpu_before
    problems: list[str] = []
    if cost.timed_out:
        problems.append(f"timed out after {session.timeout:.0f} s")
    if any(cost.exit_codes):
        problems.append(f"exit codes {list(cost.exit_codes)}: {_failure_detail(logs)}")
    checked = session.corpus.names[round_no % len(session.corpus.names)]
    problems += verify_download(session.corpus, dest, checked, session.expected_sha256(checked))
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    return RunRecord(
        profile=profile,
        tool=tool.name,
        round=round_no,
        wall_s=cost.wall_s,
        cpu_s=cost.cpu_s,
        peak_rss_mib=cost.peak_rss_mib,
        rss_sum_mib=cost.rss_sum_mib,
        processes=len(cost.processes),
        server_cpu_s=server_cpu,
        bytes=session.corpus.total_bytes,
        problems=tuple(problems),
    )


def run_profile(
    session: Session, tools: list[Tool], profile: str, cap_rate: str | None, repeat: int
) -> list[RunRecord]:
    records: list[RunRecord] = []
    with contextlib.ExitStack() as stack:
        route, proxy = DIRECT, None
        if profile in HTTPS_PROFILES:
            ca = SimulatorCA(session.work / "ca")
            server: Any = stack.enter_context(NginxProcess(session.corpus.directory, cap_rate, ca))
            if profile == "e":
                proxy = stack.enter_context(ProxyProcess())
            route = Route(ca.ca_file, proxy.url if proxy else None)
        else:
            server = stack.enter_context(ServerProcess(session.corpus.directory, cap_rate))
        for round_no in range(repeat):
            shift = round_no % len(tools)
            for tool in tools[shift:] + tools[:shift]:
                record = run_once(session, server, tool, profile, round_no, route, proxy)
                status = "ok" if record.ok else "FAILED: " + "; ".join(record.problems)
                _note(
                    f"[{profile} round {round_no + 1}/{repeat}] {tool.name}: "
                    f"{record.wall_s:.2f} s wall, {record.cpu_s:.2f} s CPU, {status}"
                )
                records.append(record)
    return records


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": platform.processor() or platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }


def _select_tools(names: list[str], tools: dict[str, Tool]) -> tuple[list[Tool], dict[str, str]]:
    """The tools that can run here, and why the others cannot."""
    chosen: list[Tool] = []
    skipped: dict[str, str] = {}
    for name in names:
        reason = tools[name].skip_reason()
        if reason:
            skipped[name] = reason
            _note(f"skipping {name}: {reason}")
        else:
            tools[name].prepare()
            chosen.append(tools[name])
    if not gnu_time_available():
        _note(f"peak RSS not measured: {GNU_TIME} is not GNU time (`sudo apt-get install time`)")
    return chosen, skipped


def _tool_info(names: list[str], tools: dict[str, Tool], skipped: dict[str, str]) -> dict[str, Any]:
    return {
        name: {
            "description": tools[name].description,
            "version": "" if name in skipped else tools[name].version(),
            "skipped": skipped.get(name),
        }
        for name in names
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser(TOOL_NAMES).parse_args(argv)
    tools = all_tools(args.ours_exe)
    chosen, skipped = _select_tools(args.only, tools)
    if not chosen:
        _note("nothing to run: every selected tool was skipped")
        return 2
    started = datetime.now(UTC)
    _note(f"preparing {args.files} x {args.size:g} MB in {args.served_dir} ...")
    corpus = ensure_corpus(args.served_dir, args.files, int(args.size * 1e6))
    warm_page_cache(corpus)
    cap = args.cap_rate.removesuffix("/s")
    labels = {
        "a": "a: unlimited",
        "b": f"b: {cap}/s per conn",
        "c": "c: HTTPS unlimited",
        "d": f"d: HTTPS {cap}/s per conn",
        "e": "e: HTTPS via proxy",
    }
    profiles = list(args.profiles)
    if HTTPS_PROFILES & set(profiles) and (missing := nginx_missing()):
        _note(f"skipping the HTTPS profiles: {missing}")
        profiles = [p for p in profiles if p not in HTTPS_PROFILES]
    machine = _machine()
    records: list[RunRecord] = []
    with tempfile.TemporaryDirectory(prefix="civitai-tui-bench-") as work:
        session = Session(corpus=corpus, work=Path(work), timeout=args.timeout, digests={})
        for profile in profiles:
            rate = args.cap_rate if profile in CAPPED_PROFILES else None
            records += run_profile(session, chosen, profile, rate, args.repeat)
    rows = summarize(records)
    load = f"{machine['loadavg_at_start'][0]:.1f} / {os.getloadavg()[0]:.1f}"
    table = markdown_table(rows, labels) + "\n\n" + targets_markdown(rows, records, load)
    print(table)
    result_path = args.results_dir / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    settings = {
        "files": args.files,
        "file_bytes": corpus.size,
        "repeat": args.repeat,
        "profiles": {p: labels[p] for p in profiles},
        "timeout_s": args.timeout,
    }
    session_info = {
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "settings": settings,
        "tools": _tool_info(args.only, tools, skipped),
        "table_markdown": table,
        "targets": [
            {"target": c.target.label, "limit": c.target.limit, "ours": c.value}
            | {"verdict": c.verdict}
            for c in check_targets(rows, records)
        ],
    }
    write_json(result_path, session_info, records, rows)
    _note(f"results: {result_path}")
    return 0 if all(r.ok for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
