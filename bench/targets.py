"""The download targets (issue #13), checked against one bench session's paired figures.

Printed after the table, so ``python -m bench.run`` answers "did we make it?" in
one command: every ratio is the paired one of the table (each round's ``ours``
divided by the anchor's from the same round, median over rounds). The proxy
target pairs profile ``e`` (through the proxy) with ``c`` (direct) round by
round. CPU seconds per GB are printed beside the CPU ratio: unlike wall time they
hardly move with the load of other work on the machine. A target whose profile
or anchor did not run says so instead of passing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.report import RunRecord, SummaryRow

TOOL = "ours"


@dataclass(frozen=True)
class Target:
    """``ours``' figure in ``profile`` must stay at or under ``limit``."""

    label: str
    profile: str
    limit: float
    #: wall/cpu: the paired ratio to ``anchor``; rss: peak RSS MiB; proxy: e ÷ c wall.
    metric: str
    anchor: str = ""


TARGETS = (
    Target("HTTP unlimited: wall ÷ aria2c", "a", 0.6, "wall", "aria2c"),
    Target("HTTP unlimited: wall ÷ ten curls", "a", 1.8, "wall", "curl"),
    Target("HTTP 20 MB/s per connection: wall ÷ aria2c", "b", 0.9, "wall", "aria2c"),
    Target("HTTPS unlimited: wall ÷ aria2c", "c", 0.75, "wall", "aria2c"),
    Target("HTTPS unlimited: wall ÷ ten curls", "c", 1.5, "wall", "curl"),
    Target("HTTPS unlimited: CPU ÷ ten curls", "c", 1.3, "cpu", "curl"),
    Target("HTTPS unlimited: peak RSS MiB", "c", 120, "rss"),
    Target("HTTPS 20 MB/s per connection: wall ÷ aria2c", "d", 0.9, "wall", "aria2c"),
    Target("HTTPS through the proxy: wall ÷ direct (e ÷ c)", "e", 1.15, "proxy"),
)


@dataclass(frozen=True)
class Checked:
    target: Target
    value: float | None  # None: not measured in this session

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "not run"
        # RSS is a hard ceiling ("< 120 MiB"); the ratios are "at most".
        if self.target.metric == "rss":
            return "met" if self.value < self.target.limit else "MISSED"
        return "met" if self.value <= self.target.limit else "MISSED"


def _row(rows: list[SummaryRow], profile: str, tool: str) -> SummaryRow | None:
    return next((r for r in rows if r.profile == profile and r.tool == tool), None)


def _proxy_ratio(records: list[RunRecord]) -> float | None:
    """Median over rounds of ours' wall through the proxy (e) ÷ direct (c)."""
    direct = {r.round: r.wall_s for r in records if r.ok and r.tool == TOOL and r.profile == "c"}
    quotients = [
        r.wall_s / direct[r.round]
        for r in records
        if r.ok and r.tool == TOOL and r.profile == "e" and direct.get(r.round)
    ]
    return statistics.median(quotients) if quotients else None


def _figure(target: Target, rows: list[SummaryRow], records: list[RunRecord]) -> float | None:
    if target.metric == "proxy":
        return _proxy_ratio(records)
    row = _row(rows, target.profile, TOOL)
    if row is None:
        return None
    if target.metric == "rss":
        return row.peak_rss_mib
    ratios = row.wall_ratio if target.metric == "wall" else row.cpu_ratio
    return ratios.get(target.anchor)


def check(rows: list[SummaryRow], records: list[RunRecord]) -> list[Checked]:
    """Every target with ours' measured figure (None when its runs are missing)."""
    return [Checked(target, _figure(target, rows, records)) for target in TARGETS]


def cpu_per_gb(rows: list[SummaryRow], records: list[RunRecord], profile: str) -> dict[str, float]:
    """Median CPU seconds per GB (10^9 bytes) of every tool that ran ``profile``."""
    out = {}
    for row in rows:
        if row.profile != profile or row.cpu_s is None:
            continue
        sizes = [r.bytes for r in records if r.profile == profile and r.tool == row.tool]
        if sizes and sizes[0]:
            out[row.tool] = row.cpu_s / (sizes[0] / 1e9)
    return out


def markdown(rows: list[SummaryRow], records: list[RunRecord], load: str) -> str:
    """The targets as a Markdown table, then CPU s per GB over HTTPS and the load."""
    lines = ["| target | limit | ours | verdict |", "|---|---|---|---|"]
    for item in check(rows, records):
        value = "n/a" if item.value is None else f"{item.value:.2f}"
        lines.append(f"| {item.target.label} | {item.target.limit:g} | {value} | {item.verdict} |")
    per_gb = cpu_per_gb(rows, records, "c")
    if per_gb:
        shown = ", ".join(f"{tool} {value:.2f}" for tool, value in per_gb.items())
        lines += ["", f"HTTPS unlimited, CPU s per GB: {shown}."]
    lines += ["", f"Load average (1 min) at start and end: {load}."]
    return "\n".join(lines)
