"""The seed's decision tables: the baseline the per-host probes build on.

Connections (per host, every ``interval``): CPU above its threshold sheds one
when this engine is a real part of that load (at least ``ENGINE_SHARE`` of the
machine: on a machine busy with other work, fewer connections would only slow
the download, not free the CPU); memory above its threshold sheds one; CPU and
memory both below 50 % on a GOOD or EXCELLENT network add one; otherwise hold.
Chunk size (read buffer): x2 up to the max on EXCELLENT, /2 down to the min on
POOR or UNSTABLE.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from civitai_tui.perf.config import OptimizationConfig
from civitai_tui.perf.network import NetworkCondition

GOOD_NETWORKS = frozenset({NetworkCondition.EXCELLENT, NetworkCondition.GOOD})
BAD_NETWORKS = frozenset({NetworkCondition.POOR, NetworkCondition.UNSTABLE})
#: The engine's share of the machine's CPU (%) from which a busy CPU sheds connections.
ENGINE_SHARE = 10.0


class Action(StrEnum):
    GROW = "grow"
    SHED = "shed"
    HOLD = "hold"


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str


def system_verdict(
    cpu: float,
    memory: float,
    condition: NetworkCondition | None,
    config: OptimizationConfig,
    engine_cpu: float = 100.0,
) -> Verdict:
    """What the machine's load (``engine_cpu``: this process's share) and the network say."""
    if cpu > config.shed_cpu and engine_cpu >= ENGINE_SHARE:
        return Verdict(
            Action.SHED,
            f"CPU {cpu:.0f} % is above {config.shed_cpu:.0f} % (this engine {engine_cpu:.0f} %)",
        )
    if memory > config.shed_memory:
        return Verdict(Action.SHED, f"memory {memory:.0f} % is above {config.shed_memory:.0f} %")
    low = config.grow_below
    if cpu < low and memory < low and condition in GOOD_NETWORKS:
        return Verdict(
            Action.GROW,
            f"CPU {cpu:.0f} % and memory {memory:.0f} % are below {low:.0f} % "
            f"on a {condition} network",
        )
    return Verdict(Action.HOLD, "")


def next_chunk_size(
    chunk: int, condition: NetworkCondition | None, config: OptimizationConfig
) -> tuple[int, str]:
    """The read buffer the seed table wants now, and why (same size: no reason)."""
    low, high = config.min_chunk_size, config.max_chunk_size
    policy = config.limits.chunk
    if policy == "max":
        return high, "" if chunk == high else f"{config.mode} mode reads in the largest chunks"
    if policy == "min":
        return low, "" if chunk == low else f"{config.mode} mode reads in the smallest chunks"
    if condition is NetworkCondition.EXCELLENT and chunk < high:
        return min(high, chunk * 2), "the network is excellent: doubling the read buffer"
    if condition in BAD_NETWORKS and chunk > low:
        return max(low, chunk // 2), f"the network is {condition}: halving the read buffer"
    clamped = min(high, max(low, chunk))
    return clamped, "" if clamped == chunk else "keeping the read buffer within its limits"
