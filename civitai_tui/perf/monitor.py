"""Monitoring: the machine and the engine (psutil), and throughput per file, host and total.

psutil is sampled with ``interval=None`` (it compares with the previous call), so
a sample never sleeps and never blocks the event loop. Throughput comes from the
bus: each ``FileProgress`` carries a file's byte count, so the bytes moved
between two samples are exact. Every series keeps an EWMA and the last 60
samples (the seed's history).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import psutil

HISTORY = 60
EWMA_ALPHA = 0.3
#: A file with no progress event for this long is no longer counted as active.
IDLE_AFTER = 5.0


@dataclass(frozen=True)
class SystemSample:
    cpu_percent: float
    memory_percent: float
    engine_cpu_percent: float
    engine_rss: int


class SystemMonitor:
    """Non-blocking CPU and memory samples of the machine and of this process."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._cpus = psutil.cpu_count() or 1
        psutil.cpu_percent(interval=None)  # prime: the next call measures since now
        self._process.cpu_percent(interval=None)

    def sample(self) -> SystemSample:
        return SystemSample(
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_percent=psutil.virtual_memory().percent,
            engine_cpu_percent=self._process.cpu_percent(interval=None) / self._cpus,
            engine_rss=self._process.memory_info().rss,
        )


@dataclass
class Series:
    """One throughput series: an EWMA and the last ``HISTORY`` samples (bytes/s)."""

    ewma: float = 0.0
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def add(self, value: float) -> None:
        self.ewma = value if not self.history else EWMA_ALPHA * value + (1 - EWMA_ALPHA) * self.ewma
        self.history.append(value)


#: Seconds without new bytes after which a file's rate reads as 0.
RATE_STALE = 0.5


@dataclass
class FileTrack:
    host: str
    done: int = 0
    credited: int = 0  # bytes already added to the host's running total
    sampled: int = 0  # bytes already counted in the file's series
    connections: int = 0
    serving: int = 0  # of them, with an answer
    stuck: int = 0  # of them, waiting for one longer than a request takes
    seen: float = field(default_factory=time.monotonic)
    #: The last rate measurement: its rate, and the progress it was measured up to.
    rate: float = 0.0
    rate_done: int = field(init=False)
    rate_seen: float = field(init=False)

    def __post_init__(self) -> None:
        self.rate_done, self.rate_seen = self.done, self.seen

    def measure_rate(self) -> float:
        """The rate between progress reports that moved (no aliasing with ticks).

        Bytes land in bursts (a paced server, a slow connection): a report that
        moved nothing extends the interval rather than reading as 0 B/s, until
        ``RATE_STALE`` seconds pass without bytes.
        """
        moved, span = self.done - self.rate_done, self.seen - self.rate_seen
        if span > 0 and (moved > 0 or span >= RATE_STALE):
            self.rate = max(0, moved) / span
            self.rate_done, self.rate_seen = self.done, self.seen
        return self.rate


class ThroughputTracker:
    """Bytes moved per file, per host and in total, from progress events."""

    def __init__(self) -> None:
        self.files: dict[str, FileTrack] = {}
        self.per_file: dict[str, Series] = {}
        self.per_host: dict[str, Series] = {}
        self.total = Series()
        self._host_bytes: dict[str, int] = {}  # running totals
        self._sampled_host: dict[str, int] = {}
        self._last = time.monotonic()

    def started(self, key: str, host: str, done: int = 0) -> None:
        self.files[key] = FileTrack(host, done, done, done)

    def progress(
        self, key: str, done: int, connections: int, serving: int | None = None, stuck: int = 0
    ) -> None:
        track = self.files.get(key)
        if track is None:
            return
        track.done, track.connections, track.seen = done, connections, time.monotonic()
        track.serving = connections if serving is None else serving
        track.stuck = stuck

    def finished(self, key: str) -> None:
        track = self.files.pop(key, None)
        self.per_file.pop(key, None)
        if track is not None:
            self._credit(track)

    def host_of(self, key: str) -> str:
        track = self.files.get(key)
        return track.host if track else ""

    def active(self, host: str | None = None) -> list[FileTrack]:
        now = time.monotonic()
        return [
            t
            for t in self.files.values()
            if now - t.seen < IDLE_AFTER and (host is None or t.host == host)
        ]

    def connections(self, host: str | None = None) -> int:
        return sum(t.connections for t in self.active(host))

    def serving(self, host: str) -> int:
        """Connections to ``host`` with an answer (not those still waiting for one)."""
        return sum(t.serving for t in self.active(host))

    def usable(self, host: str) -> int:
        """Connections to ``host`` serving or asking no longer than a request takes."""
        return sum(t.connections - t.stuck for t in self.active(host))

    def host_rate(self, host: str) -> float:
        """Bytes/s from ``host`` now: each active file's rate between its progress reports."""
        return sum(t.measure_rate() for t in self.active(host))

    def _credit(self, track: FileTrack) -> None:
        delta = max(0, track.done - track.credited)
        track.credited = track.done
        self._host_bytes[track.host] = self._host_bytes.get(track.host, 0) + delta

    def sample(self) -> float:
        """Close one sample interval; returns the total rate (bytes/s)."""
        now = time.monotonic()
        elapsed = max(now - self._last, 1e-6)
        self._last = now
        for key, track in self.files.items():
            self._credit(track)
            moved = max(0, track.done - track.sampled)
            self.per_file.setdefault(key, Series()).add(moved / elapsed)
            track.sampled = track.done
        total = 0
        for host, running in self._host_bytes.items():
            delta = running - self._sampled_host.get(host, 0)
            self._sampled_host[host] = running
            self.per_host.setdefault(host, Series()).add(delta / elapsed)
            total += delta
        rate = total / elapsed
        self.total.add(rate)
        return rate
