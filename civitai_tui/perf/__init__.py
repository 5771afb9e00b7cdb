"""The performance optimizer: watches the machine and the network, tunes the downloader.

The seed's names are the library API and are re-exported here.
"""

from civitai_tui.perf.config import OptimizationConfig
from civitai_tui.perf.modes import ModeLimits, OptimizationMode
from civitai_tui.perf.network import NetworkCondition, classify_network_condition
from civitai_tui.perf.optimizer import PerformanceOptimizer
from civitai_tui.perf.retry import get_retry_delay
from civitai_tui.perf.session import create_optimized_session

__all__ = [
    "ModeLimits",
    "NetworkCondition",
    "OptimizationConfig",
    "OptimizationMode",
    "PerformanceOptimizer",
    "classify_network_condition",
    "create_optimized_session",
    "get_retry_delay",
]
