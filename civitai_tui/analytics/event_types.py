"""The analytics vocabulary: which kinds of rows ``analytics.db`` holds.

Each :class:`EventType` has a stable string (used in JSON and reports) and a
small integer code (stored in the ``events.type`` column to keep rows compact).
Bus event classes map onto these types in :mod:`civitai_tui.analytics.rows`.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """What an analytics row records; ``code`` is what SQLite stores."""

    DOWNLOAD_STARTED = "download_started"
    DOWNLOAD_PROGRESS = "download_progress"
    DOWNLOAD_COMPLETED = "download_completed"
    DOWNLOAD_FAILED = "download_failed"
    RETRY_SCHEDULED = "retry_scheduled"
    JOB_STATE_CHANGED = "job_state_changed"
    SECURITY_SCAN = "security_scan"
    OPTIMIZER_DECISION = "optimizer_decision"
    METRICS_SAMPLE = "metrics_sample"
    NETWORK_CONDITION_CHANGED = "network_condition_changed"

    @property
    def code(self) -> int:
        return _CODES[self]


_CODES: dict[EventType, int] = {t: i for i, t in enumerate(EventType, start=1)}
