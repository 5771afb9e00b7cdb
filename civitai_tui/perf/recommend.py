"""The recommendations engine: turns the optimizer's history into concrete advice.

Each rule reads measurements the optimizer already keeps (per-host probe
measurements, throttles, system samples, network conditions) and says what it
saw and what to do, with the numbers.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from civitai_tui.perf.config import OptimizationConfig
from civitai_tui.perf.modes import MODE_LIMITS, OptimizationMode
from civitai_tui.perf.monitor import SystemSample
from civitai_tui.perf.network import NetworkCondition
from civitai_tui.perf.probe import HostProbe, Measurement
from civitai_tui.units import human_bytes

MB = 1_000_000
#: A share of samples above which a pattern is worth mentioning.
NOTABLE = 0.2
#: Per-connection rates within this spread look like a per-connection cap.
CAP_SPREAD = 0.3


@dataclass(frozen=True)
class Recommendation:
    kind: str
    message: str
    host: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def per_connection_cap(history: Iterable[Measurement]) -> float | None:
    """The per-connection rate if throughput scaled with connections, else None."""
    points = [m for m in history if m.connections >= 1 and m.rate > 0]
    if len({round(m.connections) for m in points}) < 2:
        return None
    per_conn = [m.rate / m.connections for m in points]
    lo, hi = min(m.connections for m in points), max(m.connections for m in points)
    if hi < 2 * lo:
        return None
    mean = statistics.fmean(per_conn)
    if statistics.pstdev(per_conn) > CAP_SPREAD * mean:
        return None
    return mean


def host_advice(probe: HostProbe) -> list[Recommendation]:
    out = []
    best = probe.best
    cap = per_connection_cap(probe.history)
    if cap is not None and best is not None:
        out.append(
            Recommendation(
                "per_connection_cap",
                f"{probe.host} caps each connection at about {human_bytes(cap)}/s; "
                f"{best.connections:.0f} connections reached {human_bytes(best.rate)}/s",
                probe.host,
            )
        )
    elif best is not None and len(probe.history) >= 3 and best.connections <= 4:
        out.append(
            Recommendation(
                "few_connections_enough",
                f"more connections did not add throughput on {probe.host}: "
                f"{best.connections:.0f} reach {human_bytes(best.rate)}/s",
                probe.host,
            )
        )
    if probe.throttles:
        out.append(
            Recommendation(
                "throttled",
                f"{probe.host} answered 429/503 {probe.throttles} time(s); "
                f"kept at most {probe.conn_limit or probe.budget} connections there",
                probe.host,
            )
        )
    return out


def _share(values: Sequence[float], above: float) -> float:
    return sum(1 for v in values if v > above) / len(values) if values else 0.0


def system_advice(
    samples: Sequence[SystemSample], config: OptimizationConfig
) -> list[Recommendation]:
    out = []
    cpu_high = _share([s.cpu_percent for s in samples], config.cpu_threshold)
    if cpu_high >= NOTABLE and config.mode is not OptimizationMode.EFFICIENCY:
        engine = statistics.fmean(s.engine_cpu_percent for s in samples)
        cap = MODE_LIMITS[OptimizationMode.EFFICIENCY].max_connections
        out.append(
            Recommendation(
                "cpu",
                f"CPU was above {config.cpu_threshold:.0f} % {cpu_high:.0%} of the time "
                f"(this engine: {engine:.0f} % on average): EFFICIENCY mode caps connections "
                f"at {cap} and reads in the largest chunks, which costs less CPU per byte",
            )
        )
    mem_high = _share([s.memory_percent for s in samples], config.memory_threshold)
    if mem_high >= NOTABLE:
        out.append(
            Recommendation(
                "memory",
                f"memory was above {config.memory_threshold:.0f} % {mem_high:.0%} of the time: "
                "MINIMAL mode uses the fewest connections and the smallest buffers",
            )
        )
    return out


def network_advice(conditions: Sequence[NetworkCondition]) -> list[Recommendation]:
    if not conditions:
        return []
    unstable = sum(1 for c in conditions if c is NetworkCondition.UNSTABLE) / len(conditions)
    if unstable < NOTABLE:
        return []
    return [
        Recommendation(
            "unstable_network",
            f"the network was unstable {unstable:.0%} of the time: retries wait longer "
            "(3 s base); fewer files at once (bulk.max_files) may steady it",
        )
    ]


def recommendations(
    probes: Mapping[str, HostProbe],
    samples: Sequence[SystemSample],
    conditions: Sequence[NetworkCondition],
    config: OptimizationConfig,
) -> list[Recommendation]:
    """Every piece of advice the history supports now."""
    out: list[Recommendation] = []
    for probe in probes.values():
        out.extend(host_advice(probe))
    out.extend(system_advice(samples, config))
    out.extend(network_advice(conditions))
    return out
