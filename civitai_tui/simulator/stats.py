"""Counters the simulator keeps so tests can see what clients did."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

API_LOG = 10_000


@dataclass
class SimulatorStats:
    """What reached the two origins (``GET /_sim/stats`` returns it as JSON)."""

    #: Hits of ``/api/download`` per token ("" = no token), failed ones included.
    download_hits: Counter[str] = field(default_factory=Counter)
    api_requests: int = 0
    #: (monotonic time, "METHOD /path") of the latest API requests, to check pacing.
    api_log: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=API_LOG))
    storage_requests: int = 0
    storage_bytes_sent: int = 0
    #: Body bytes sent per file id (a resume must not fetch a file twice).
    bytes_per_file: Counter[int] = field(default_factory=Counter)
    #: Every Authorization header value that reached the storage origin (must stay empty).
    storage_auth_headers: list[str] = field(default_factory=list)
    #: Open TCP connections on the storage origin, as counted at each request (the
    #: latest count, and the most seen at once).
    open_connections: int = 0
    max_open_connections: int = 0
    #: The most file responses being sent at once (what ``max_active_requests`` counts).
    max_active_requests: int = 0
    #: Requests refused for being over ``max_connections``.
    refused: int = 0
    #: (file id, Range header) of every storage request for a file.
    range_requests: list[tuple[int, str | None]] = field(default_factory=list)

    def saw_connections(self, count: int) -> None:
        self.open_connections = count
        self.max_open_connections = max(self.max_open_connections, count)

    def saw_active(self, count: int) -> None:
        self.max_active_requests = max(self.max_active_requests, count)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["download_hits"] = dict(self.download_hits)
        data["bytes_per_file"] = dict(self.bytes_per_file)
        data["range_requests"] = [list(item) for item in self.range_requests]
        data["api_log"] = [list(item) for item in self.api_log]
        return data
