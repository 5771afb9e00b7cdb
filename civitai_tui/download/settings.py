"""The downloader's knobs and the outcome of one file: ``DownloadSettings``, ``DownloadResult``.

Settings are plain mutable dataclasses: the performance optimizer may change
``connections`` while downloads run (workers read it whenever they look for
work). Defaults were chosen by measuring on loopback (see the bench notes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from civitai_tui.binding import bound
from civitai_tui.download.disk import FreeSpaceRule, parse_free_space
from civitai_tui.download.retry import RetryPolicy
from civitai_tui.download.speed import RateLimiter, SpeedLimits
from civitai_tui.errors import CivitaiTuiError

MiB = 1 << 20


class SharedBudget(Protocol):
    """A connection budget per host shared with other engines (fleet mode)."""

    def granted(self, host: str) -> int:
        """Connections this engine may have open to ``host`` now."""
        ...


@dataclass
class VerifySettings:
    """What happens after the last byte."""

    pickle_timeout: float = 120.0
    #: Where refused files go; None = ``<state_dir>/quarantine``.
    quarantine_base: Path | None = None


@dataclass
class DownloadSettings:
    """Per-file transfer settings (mutable; ``connections`` may change mid-download)."""

    connections: int = bound("download.connections", 8)
    #: Connections per file for files on a given storage host, set live by the
    #: performance optimizer; a host not listed uses ``connections``.
    host_connections: dict[str, int] = field(default_factory=dict)
    #: The most connections all files on a host may have open together (set by the
    #: optimizer: a server's connection limit is per client); a host not listed: no cap.
    host_budget: dict[str, int] = field(default_factory=dict)
    #: The budget of a host not in ``host_budget`` (a mode's per-host maximum), None: none.
    default_host_budget: int | None = None
    #: Fleet mode: this engine's part of each host's budget shared with the other
    #: engines (``civitai_tui.fleet.slots``); None: not in a fleet.
    shared_budget: SharedBudget | None = None
    #: Never split a range below this (a file under 2x this uses one connection);
    #: ranges are split only where that beats a new request's first byte, so a small
    #: floor (aria2c's ``-k1M``) costs nothing on slow-to-answer hosts.
    min_split: int = bound("download.min_split", 1 * MiB)
    #: aiohttp read buffer per connection (memory ~ connections x 2 x buffer).
    buffer_size: int = 256 * 1024
    #: Plain-HTTP bodies go from the socket to the file with ``splice`` (Linux), never
    #: through a buffer (``download.splice``); off: every body is copied.
    zero_copy: bool = True
    checkpoint_seconds: float = bound("download.checkpoint_seconds", 2.0)
    checkpoint_bytes: int = 64 * MiB
    #: A connection with no bytes for this long is dropped and its range re-queued.
    stall_timeout: float = bound("download.stall_timeout", 30.0)
    #: The whole file without forward progress (outside retry waits) for this long fails.
    file_stall_timeout: float = 300.0
    #: A connection slower than ``min_speed`` B/s over ``min_speed_window`` s is dropped.
    min_speed: int = 1024
    min_speed_window: float = 30.0
    #: Free space a download leaves on its volume (``download.min_free_space``).
    min_free_space: FreeSpaceRule = bound(
        "download.min_free_space", default_factory=FreeSpaceRule, read=parse_free_space
    )
    #: How often a file that changes on the server mid-download is restarted.
    max_restarts: int = 3
    progress_interval: float = 0.1
    #: Compute the SHA256 of files with no published hash too (for the record;
    #: costs about 0.5 CPU-s per GB). Off: such files are reported unverified.
    hash_unpublished: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: The overall and per-job speed limits (changed live: ``download.max_speed``, jobs).
    speed: SpeedLimits = bound(
        "download.max_speed",
        default_factory=SpeedLimits,
        read=lambda rate: SpeedLimits(RateLimiter(rate)),
        update=SpeedLimits.set_overall,
    )
    #: Called on the loop for every answer fetched by a worker thread (those skip
    #: aiohttp's trace hooks): ``(host, seconds to the headers, new connection)``.
    stream_observer: Callable[[str, float, bool], None] | None = None
    verify: VerifySettings = field(default_factory=VerifySettings)


@dataclass
class DownloadResult:
    """What happened to one file."""

    status: Literal["completed", "failed", "skipped"]
    path: Path | None
    bytes: int = 0
    #: Bytes actually transferred in this run (a resume fetches only what was missing).
    fetched_bytes: int = 0
    sha256: str | None = None
    verified: bool = False
    error: CivitaiTuiError | None = None
    connections: int = 0
    retries: int = 0
    duration: float = 0.0
    quarantined: Path | None = None
    #: Something beside the file that went wrong (a sidecar not written); not a failure.
    warning: str | None = None
