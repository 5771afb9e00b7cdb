"""Connection health per host: time to first byte, connections opened, throttles, resets, stalls.

Time to first byte and new connections come from an aiohttp ``TraceConfig``
attached to the download session (``on_request_end`` fires when the response
headers arrive) and, for the worker-thread streams, from ``record_stream``;
errors come from the downloader's ``RetryScheduled`` events, classified by
status and message.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

import aiohttp

from civitai_tui.download.responses import closed_unanswered

EWMA_ALPHA = 0.3
THROTTLE_STATUSES = frozenset({429, 503})


class Trouble(StrEnum):
    THROTTLED = "throttled"  # 429 / 503
    REFUSED = "refused"  # the connection was closed before any answer (a limit by resets)
    RESET = "reset"  # the connection broke
    STALLED = "stalled"  # no bytes, or too slow
    ERROR = "error"  # anything else worth retrying


def classify_retry(status: int | None, reason: str) -> Trouble:
    """What kind of trouble a ``RetryScheduled`` reports."""
    if status in THROTTLE_STATUSES:
        return Trouble.THROTTLED
    text = reason.lower()
    if "no data" in text or "too slow" in text or "no progress" in text:
        return Trouble.STALLED
    if status is None and closed_unanswered(text):
        return Trouble.REFUSED
    if status is None:
        return Trouble.RESET
    return Trouble.ERROR


@dataclass
class HostHealth:
    requests: int = 0
    connections_opened: int = 0
    ttfb: float = 0.0  # seconds, EWMA
    throttled: int = 0
    refused: int = 0
    reset: int = 0
    stalled: int = 0
    error: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class HealthBoard:
    """Health counters of every host seen."""

    def __init__(self) -> None:
        self.hosts: dict[str, HostHealth] = {}

    def host(self, host: str) -> HostHealth:
        return self.hosts.setdefault(host, HostHealth())

    def record(self, host: str, trouble: Trouble) -> None:
        health = self.host(host)
        setattr(health, trouble.value, getattr(health, trouble.value) + 1)

    def record_ttfb(self, host: str, seconds: float) -> None:
        health = self.host(host)
        health.ttfb = (
            seconds
            if not health.requests
            else (EWMA_ALPHA * seconds + (1 - EWMA_ALPHA) * health.ttfb)
        )
        health.requests += 1

    def record_stream(self, host: str, ttfb: float, new_connection: bool) -> None:
        """A request made by a worker-thread stream (aiohttp's hooks never see those)."""
        self.record_ttfb(host, ttfb)
        if new_connection:
            self.host(host).connections_opened += 1

    def trace_config(self) -> aiohttp.TraceConfig:
        """Hooks for a session: TTFB and new connections per host."""
        trace = aiohttp.TraceConfig()

        async def request_start(
            _: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
        ) -> None:
            ctx.host = params.url.host or ""
            ctx.start = asyncio.get_running_loop().time()

        async def request_end(
            _: aiohttp.ClientSession, ctx: SimpleNamespace, __: aiohttp.TraceRequestEndParams
        ) -> None:
            self.record_ttfb(ctx.host, asyncio.get_running_loop().time() - ctx.start)

        async def connection_made(
            _: aiohttp.ClientSession, ctx: SimpleNamespace, __: object
        ) -> None:
            self.host(getattr(ctx, "host", "")).connections_opened += 1

        trace.on_request_start.append(request_start)
        trace.on_request_end.append(request_end)
        trace.on_connection_create_end.append(connection_made)
        return trace
