"""Bench results: one record per run, medians per (profile, tool), paired ratios, output.

Ratios against the anchors (aria2c, curl) are paired: within each round the
tool's wall (or CPU) time is divided by the anchor's from the same round, and
the median of those quotients is reported. Runs in one round are minutes apart
at most, so drift of the shared machine cancels out better than a ratio of
medians taken over the whole session would.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ANCHORS = ("aria2c", "curl")


@dataclass(frozen=True)
class RunRecord:
    """One timed run of one tool in one round of one profile."""

    profile: str
    tool: str
    round: int
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    rss_sum_mib: float
    processes: int
    server_cpu_s: float
    bytes: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class SummaryRow:
    """Medians over the good runs of one tool in one profile, plus paired anchor ratios."""

    profile: str
    tool: str
    runs_ok: int
    runs: int
    wall_s: float | None
    mb_per_s: float | None
    cpu_s: float | None
    peak_rss_mib: float | None
    rss_sum_mib: float | None
    processes: int
    server_cpu_s: float | None
    wall_ratio: dict[str, float | None] = field(default_factory=dict)
    cpu_ratio: dict[str, float | None] = field(default_factory=dict)


def _median(values: Iterable[float]) -> float | None:
    collected = list(values)
    return statistics.median(collected) if collected else None


def _paired_ratio(
    runs: list[RunRecord], anchor: list[RunRecord], metric: Callable[[RunRecord], float]
) -> float | None:
    by_round = {r.round: r for r in anchor if r.ok and metric(r) > 0}
    return _median(metric(r) / metric(by_round[r.round]) for r in runs if r.round in by_round)


def summarize(records: list[RunRecord]) -> list[SummaryRow]:
    """One row per (profile, tool), in the order they first ran."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        groups.setdefault((record.profile, record.tool), []).append(record)
    return [_summarize_group(groups, key) for key in groups]


def _summarize_group(
    groups: dict[tuple[str, str], list[RunRecord]], key: tuple[str, str]
) -> SummaryRow:
    profile, tool = key
    runs = groups[key]
    good = [r for r in runs if r.ok]
    wall = _median(r.wall_s for r in good)
    anchors = {name: groups.get((profile, name), []) for name in ANCHORS}
    return SummaryRow(
        profile=profile,
        tool=tool,
        runs_ok=len(good),
        runs=len(runs),
        wall_s=wall,
        mb_per_s=good[0].bytes / wall / 1e6 if good and wall else None,
        cpu_s=_median(r.cpu_s for r in good),
        peak_rss_mib=_median(r.peak_rss_mib for r in good),
        rss_sum_mib=_median(r.rss_sum_mib for r in good),
        processes=runs[0].processes,
        server_cpu_s=_median(r.server_cpu_s for r in good),
        wall_ratio={
            a: _paired_ratio(good, runs_a, lambda r: r.wall_s) for a, runs_a in anchors.items()
        },
        cpu_ratio={
            a: _paired_ratio(good, runs_a, lambda r: r.cpu_s) for a, runs_a in anchors.items()
        },
    )


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _rss(row: SummaryRow) -> str:
    if row.processes > 1 and row.rss_sum_mib is not None:
        return f"{_fmt(row.peak_rss_mib, 0)} (sum {_fmt(row.rss_sum_mib, 0)})"
    return _fmt(row.peak_rss_mib, 0)


def markdown_table(rows: list[SummaryRow], profile_labels: dict[str, str]) -> str:
    """The results as a Markdown table (medians; ratios < 1 mean faster / cheaper)."""
    ratio_heads = [f"wall ÷ {a}" for a in ANCHORS] + [f"CPU ÷ {a}" for a in ANCHORS]
    head = [
        "profile",
        "tool",
        "ok",
        "wall s",
        "MB/s",
        "CPU s",
        "peak RSS MiB",
        "server CPU s",
        *ratio_heads,
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [
            profile_labels.get(row.profile, row.profile),
            row.tool,
            f"{row.runs_ok}/{row.runs}",
            _fmt(row.wall_s),
            _fmt(row.mb_per_s, 0),
            _fmt(row.cpu_s),
            _rss(row),
            _fmt(row.server_cpu_s),
            *(_fmt(row.wall_ratio.get(a)) for a in ANCHORS),
            *(_fmt(row.cpu_ratio.get(a)) for a in ANCHORS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Medians over good runs. Ratios: median over rounds of (tool ÷ anchor in the same"
        " round), so they need not equal the ratio of the medians; below 1 is better."
    )
    return "\n".join(lines)


def write_json(
    path: Path, payload: dict[str, Any], records: list[RunRecord], rows: list[SummaryRow]
) -> None:
    """Write the session (settings, machine, every run, the summary) as JSON."""
    document = {
        **payload,
        "runs": [{**asdict(r), "ok": r.ok} for r in records],
        "summary": [asdict(row) for row in rows],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
