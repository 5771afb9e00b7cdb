"""The optimizer's modes: each one a documented set of limits, switchable live.

========== =========== ======= ================ ============ ==============================
mode       connections  start   probing          read buffer  CPU / memory shed threshold
           per host
========== =========== ======= ================ ============ ==============================
SPEED      1 .. max     8       up only, +5 %    up to max    90 % (only a machine in trouble)
EFFICIENCY 1 .. 16      2       up 10 %, down    max          50 % (gives CPU back early)
                                to 90 % of best
MINIMAL    1 .. 2       1       no               min          config thresholds
ADAPTIVE   1 .. max     1       both, 10 %       min .. max   config thresholds (default mode)
========== =========== ======= ================ ============ ==============================

"max" is ``performance.max_connections``; "N %" is the least throughput gain,
relative to linear scaling, for which a probe keeps added connections (and,
probing down, the most loss for which it keeps fewer). EFFICIENCY keeps the
fewest connections that still move 90 % of the best rate seen on the host.
Modes with a per-host maximum (EFFICIENCY, MINIMAL) hold all of a host's files
to it together: a file that would cross it waits for a connection. SPEED never gives a
connection back to save resources; the others drop connections that add nothing. ADAPTIVE
also moves the read buffer with the network condition (seed table).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OptimizationMode(StrEnum):
    SPEED = "speed"
    EFFICIENCY = "efficiency"
    MINIMAL = "minimal"
    ADAPTIVE = "adaptive"


@dataclass(frozen=True)
class ModeLimits:
    """What a mode allows; ``None`` means "the configured value"."""

    max_connections: int | None
    start_connections: int
    #: Probe whether another connection adds throughput (per host).
    probe: bool
    #: A probe keeps added connections when throughput rose by at least this
    #: fraction of what linear scaling would give.
    min_gain: float
    #: Also probe downwards: drop connections that add nothing.
    shed_probe: bool
    #: Shed a connection above these CPU / memory percentages (None: config).
    cpu_threshold: float | None
    memory_threshold: float | None
    #: Read buffer policy: "max", "min" or "adaptive" (seed chunk table).
    chunk: str
    #: Probing down keeps fewer connections while the rate stays at this share of the
    #: best seen on the host (None: judged against linear scaling, like probes up).
    keep_share: float | None = None


MODE_LIMITS: dict[OptimizationMode, ModeLimits] = {
    OptimizationMode.SPEED: ModeLimits(None, 8, True, 0.05, False, 90.0, 90.0, "max"),
    OptimizationMode.EFFICIENCY: ModeLimits(16, 2, True, 0.10, True, 50.0, None, "max", 0.9),
    OptimizationMode.MINIMAL: ModeLimits(2, 1, False, 1.0, False, None, None, "min"),
    OptimizationMode.ADAPTIVE: ModeLimits(None, 1, True, 0.10, True, None, None, "adaptive"),
}


def parse_mode(value: str | OptimizationMode) -> OptimizationMode:
    """``value`` as a mode; a ValueError names the allowed ones."""
    try:
        return OptimizationMode(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in OptimizationMode)
        raise ValueError(f"unknown mode {value!r}; expected one of {allowed}") from None
