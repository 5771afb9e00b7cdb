"""Advice from measurements: when it is given, when the history does not support it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from civitai_tui.perf.config import OptimizationConfig
from civitai_tui.perf.modes import OptimizationMode
from civitai_tui.perf.monitor import SystemSample
from civitai_tui.perf.network import NetworkCondition
from civitai_tui.perf.probe import HostProbe, Measurement
from civitai_tui.perf.recommend import per_connection_cap, recommendations

MB = 1_000_000


def kinds(
    probes: dict[str, HostProbe],
    samples: Sequence[SystemSample] = (),
    conditions: Sequence[NetworkCondition] = (),
    **config: Any,
) -> list[str]:
    return [
        r.kind
        for r in recommendations(
            probes, list(samples), list(conditions), OptimizationConfig(**config)
        )
    ]


def test_no_cap_is_claimed_from_a_narrow_or_scattered_history() -> None:
    narrow = [Measurement(n, n, n * MB) for n in (4, 5, 6)]  # never doubled
    assert per_connection_cap(narrow) is None
    scattered = [Measurement(2, 2, 1 * MB), Measurement(8, 8, 40 * MB)]
    assert per_connection_cap(scattered) is None


def test_flat_throughput_with_few_connections_says_more_do_not_help() -> None:
    probe = HostProbe("cdn.example", 2, 64, 0.1)
    probe.history.extend(Measurement(2, 2, 30 * MB) for _ in range(3))
    probe.best = probe.history[-1]
    [advice] = recommendations({"cdn.example": probe}, [], [], OptimizationConfig())
    assert advice.kind == "few_connections_enough" and advice.host == "cdn.example"
    assert "2 reach 28.6 MiB/s" in advice.message


def busy(cpu: float, memory: float) -> SystemSample:
    return SystemSample(cpu, memory, engine_cpu_percent=40.0, engine_rss=1 << 28)


def test_a_busy_machine_gets_cpu_and_memory_advice_unless_already_frugal() -> None:
    samples = [busy(99.0, 99.0)] * 5
    assert kinds({}, samples) == ["cpu", "memory"]
    assert kinds({}, samples, mode=OptimizationMode.EFFICIENCY) == ["memory"]
    assert kinds({}, [busy(1.0, 1.0)] * 5) == []


def test_unstable_network_advice_needs_a_notable_share() -> None:
    unstable, good = NetworkCondition.UNSTABLE, NetworkCondition.GOOD
    assert kinds({}, conditions=[]) == []
    assert kinds({}, conditions=[unstable] + [good] * 9) == []
    assert kinds({}, conditions=[unstable] * 3 + [good] * 7) == ["unstable_network"]
