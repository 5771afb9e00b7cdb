"""The ``analytics.*`` settings, with the defaults used when the config says nothing."""

from __future__ import annotations

from dataclasses import dataclass

from civitai_tui.binding import bound

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class AnalyticsSettings:
    """How the collector records and how long the data is kept."""

    enabled: bool = bound("analytics.enabled", True)
    anonymize_users: bool = bound("analytics.anonymize_users", True)
    #: Flush the buffer when it holds this many events...
    flush_events: int = 1000
    #: ...or every this many seconds, whichever comes first (and always on close).
    flush_interval: float = 60.0
    #: At most one progress row per file per this many seconds.
    progress_interval: float = 1.0
    #: Above this many buffered events, droppable samples (metrics) are discarded.
    max_pending: int = 250_000
    retention_days: int = bound("analytics.retention_days", 30)
    #: Size cap of analytics.db in bytes (oldest rows go first); None: no cap.
    max_db_bytes: int | None = bound("analytics.max_db_mb", 512 * MIB, read=lambda mb: mb * MIB)
