"""OptimizationConfig: the optimizer's settings, read from the ``performance.*`` keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from civitai_tui.config import Config
from civitai_tui.perf.modes import MODE_LIMITS, ModeLimits, OptimizationMode
from civitai_tui.perf.network import DEFAULT_THRESHOLDS, ConditionThresholds


@dataclass(frozen=True)
class OptimizationConfig:
    """Seed knobs plus the loop timings (seconds)."""

    mode: OptimizationMode = OptimizationMode.ADAPTIVE
    cpu_threshold: float = 75.0
    memory_threshold: float = 75.0
    #: Connections per host, at most (every mode stays at or below it).
    max_connections: int = 64
    min_chunk_size: int = 64 * 1024
    max_chunk_size: int = 4 * 1024 * 1024
    enable_adaptive_retry: bool = True
    #: The seed's table runs this often.
    interval: float = 5.0
    #: Per-host probes run this often while files download (a probe settles, then measures).
    probe_interval: float = 0.1
    #: System and throughput samples (MetricsSample) this often.
    sample_interval: float = 1.0
    #: Below this CPU and memory (%) with a GOOD or better network the table adds a connection.
    grow_below: float = 50.0
    thresholds: ConditionThresholds = field(default=DEFAULT_THRESHOLDS)

    @classmethod
    def from_config(cls, config: Config) -> OptimizationConfig:
        return cls(
            mode=OptimizationMode(config.get("performance.mode")),
            cpu_threshold=config.get("performance.cpu_threshold"),
            memory_threshold=config.get("performance.memory_threshold"),
            max_connections=config.get("performance.max_connections"),
            min_chunk_size=config.get("performance.min_chunk_size"),
            max_chunk_size=max(
                config.get("performance.min_chunk_size"), config.get("performance.max_chunk_size")
            ),
            enable_adaptive_retry=config.get("performance.enable_adaptive_retry"),
        )

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
