"""``create_optimized_session``: the download session, sized and instrumented by the optimizer.

It builds on :func:`civitai_tui.download.session.create_download_session` (no
total timeout, 30 s connect and read timeouts, DNS cache 300 s, keep-alive 30 s,
``Accept-Encoding: identity`` for file bytes) and adds the optimizer's
connection limit and its health tracing (time to first byte, new connections).
API JSON is fetched by the CivitAI client's own session, which keeps compression.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp

from civitai_tui.download.session import create_download_session

if TYPE_CHECKING:
    from civitai_tui.perf.optimizer import PerformanceOptimizer


def create_optimized_session(
    optimizer: PerformanceOptimizer | None = None, *, max_connections: int = 64
) -> aiohttp.ClientSession:
    """A byte session; with an ``optimizer``, its per-host limit and its health hooks."""
    if optimizer is None:
        return create_download_session(limit=0, limit_per_host=max_connections)
    per_host = optimizer.config.max_connections
    return create_download_session(
        limit=0,
        limit_per_host=per_host,
        read_bufsize=optimizer.config.max_chunk_size,
        trace_configs=[optimizer.health.trace_config()],
    )
