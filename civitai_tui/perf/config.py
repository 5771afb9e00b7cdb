"""OptimizationConfig: the optimizer's settings, read from the ``performance.*`` keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from civitai_tui.binding import bound
from civitai_tui.perf.modes import MODE_LIMITS, ModeLimits, OptimizationMode
from civitai_tui.perf.network import DEFAULT_THRESHOLDS, ConditionThresholds


@dataclass(frozen=True)
class OptimizationConfig:
    """Seed knobs plus the loop timings (seconds)."""

    mode: OptimizationMode = bound(
        "performance.mode", OptimizationMode.ADAPTIVE, read=OptimizationMode
    )
    cpu_threshold: float = bound("performance.cpu_threshold", 75.0)
    memory_threshold: float = bound("performance.memory_threshold", 75.0)
    #: Connections per host, at most (every mode stays at or below it).
    max_connections: int = bound("performance.max_connections", 64)
    #: At most ``max_chunk_size``: the config refuses values that cross (``ORDERED_KEYS``).
    min_chunk_size: int = bound("performance.min_chunk_size", 64 * 1024)
    max_chunk_size: int = bound("performance.max_chunk_size", 4 * 1024 * 1024)
    enable_adaptive_retry: bool = bound("performance.enable_adaptive_retry", True)
    #: The seed's table runs this often.
    interval: float = 5.0
    #: Per-host probes run this often while files download (a probe settles, then measures).
    probe_interval: float = 0.1
    #: System and throughput samples (MetricsSample) this often.
    sample_interval: float = 1.0
    #: Below this CPU and memory (%) with a GOOD or better network the table adds a connection.
    grow_below: float = 50.0
    thresholds: ConditionThresholds = field(default=DEFAULT_THRESHOLDS)

    @property
    def limits(self) -> ModeLimits:
        return MODE_LIMITS[self.mode]

    @property
    def connection_ceiling(self) -> int:
        """Connections per host the mode allows under this config."""
        mode_max = self.limits.max_connections
        return self.max_connections if mode_max is None else min(mode_max, self.max_connections)

    @property
    def start_connections(self) -> int:
        return max(1, min(self.limits.start_connections, self.connection_ceiling))

    @property
    def shed_cpu(self) -> float:
        return self.limits.cpu_threshold or self.cpu_threshold

    @property
    def shed_memory(self) -> float:
        return self.limits.memory_threshold or self.memory_threshold
