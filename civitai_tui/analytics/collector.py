"""The analytics collector: bus events in, ``analytics.db`` rows out.

:meth:`AnalyticsCollector.record` is an :class:`EventBus` callback: it only
samples progress and appends to a buffer. A background writer thread (which owns
the SQLite connection) flushes the buffer when it holds ``flush_events`` events
or ``flush_interval`` seconds have passed, whichever comes first, and always on
:meth:`close`. Each flush is one ``executemany`` transaction (see
:mod:`civitai_tui.analytics.rows`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from civitai_tui.analytics.privacy import Scrubber, load_install_key
from civitai_tui.analytics.retention import CleanupResult, cleanup
from civitai_tui.analytics.rows import RowWriter
from civitai_tui.analytics.schema import DB_NAME, connect
from civitai_tui.analytics.settings import AnalyticsSettings
from civitai_tui.config import state_dir
from civitai_tui.events import Event, EventBus, FileProgress

log = logging.getLogger(__name__)
_BATCH_ROWS = 2000


@dataclass(frozen=True, slots=True)
class CollectorStats:
    """Counters for the status line and the benchmark."""

    received: int = 0
    written: int = 0
    dropped: int = 0  # droppable samples discarded while the buffer was over max_pending
    sampled_out: int = 0  # progress events thinned to progress_interval
    lost: int = 0  # events in batches SQLite refused (logged)


class AnalyticsCollector:
    """Buffers bus events and writes them to ``analytics.db`` from a writer thread."""

    def __init__(
        self,
        db_path: Path | None = None,
        settings: AnalyticsSettings | None = None,
        *,
        key_dir: Path | None = None,
    ) -> None:
        """Open (and migrate) the database and start the writer thread.

        ``db_path`` defaults to ``<state_dir>/analytics.db``; ``key_dir`` holds the
        pseudonymisation key (default: the database's directory, the state dir).
        """
        self.settings = settings or AnalyticsSettings()
        self.db_path = db_path or state_dir() / DB_NAME
        key_dir = key_dir or self.db_path.parent
        key = load_install_key(key_dir) if self.settings.anonymize_users else None
        self._writer = RowWriter(connect(self.db_path), Scrubber(key))
        self._pending: deque[Event | _FlushMarker] = deque()  # thread-safe append/popleft
        self._received = self._dropped = self._written = self._lost = self._sampled = 0
        self._wakeup_sent = False
        self._last_progress: dict[str, float] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._flush_wanted = False
        self._detach: list[Callable[[], None]] = []
        self._thread = threading.Thread(target=self._run, name="analytics-writer", daemon=True)
        self._thread.start()

    @classmethod
    def for_bus(cls, bus: EventBus, settings: AnalyticsSettings | None = None) -> Self:
        """A collector on ``<state_dir>/analytics.db`` already subscribed to ``bus``."""
        collector = cls(settings=settings)
        collector.attach(bus)
        return collector

    def attach(self, bus: EventBus) -> None:
        """Record every event published on ``bus`` until :meth:`close`."""
        self._detach.append(bus.add_callback(self.record))

    # -- the publisher side ----------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Buffer ``event`` (cheap, lock-free; safe to call from any thread)."""
        if isinstance(event, FileProgress) and self._sampled_out(event):
            return
        pending = self._pending
        if event.droppable and len(pending) >= self.settings.max_pending:
            self._dropped += 1
            return
        self._received += 1
        pending.append(event)
        if len(pending) >= self.settings.flush_events and not self._wakeup_sent:
            self._wakeup_sent = True
            with self._cond:
                self._cond.notify()

    def _sampled_out(self, event: FileProgress) -> bool:
        last = self._last_progress.get(event.key)
        done = event.total is not None and event.done >= event.total
        if last is not None and event.ts - last < self.settings.progress_interval and not done:
            self._sampled += 1
            return True
        self._last_progress[event.key] = event.ts
        return False

    @property
    def stats(self) -> CollectorStats:
        """A snapshot of the counters."""
        return CollectorStats(
            received=self._received,
            written=self._written,
            dropped=self._dropped,
            sampled_out=self._sampled,
            lost=self._lost,
        )

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything buffered so far; False if the writer did not finish in time."""
        if not self._thread.is_alive():
            return not self._pending
        marker = _FlushMarker()
        self._pending.append(marker)  # FIFO: done once everything recorded before it is
        with self._cond:
            self._flush_wanted = True
            self._cond.notify()
        return marker.done.wait(timeout)

    def cleanup(
        self, days_to_keep: int | None = None, max_db_bytes: int | None = None
    ) -> CleanupResult:
        """Flush, then apply retention (default: the settings') to the database."""
        self.flush()
        return cleanup(
            self.db_path,
            days_to_keep=self.settings.retention_days if days_to_keep is None else days_to_keep,
            max_db_bytes=self.settings.max_db_bytes if max_db_bytes is None else max_db_bytes,
        )

    def close(self, timeout: float = 30.0) -> None:
        """Stop listening, write everything buffered, and close the database."""
        for detach in self._detach:
            detach()
        self._detach.clear()
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch:
                self._write(batch)
            elif self._closing:
                break
        self._writer.close()

    def _next_batch(self) -> list[Event | _FlushMarker]:
        interval = self.settings.flush_interval
        with self._cond:
            deadline = time.monotonic() + interval
            while not (
                self._closing
                or self._flush_wanted
                or len(self._pending) >= self.settings.flush_events
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._flush_wanted = False
            pending = self._pending
            batch = [pending.popleft() for _ in range(len(pending))]
            self._wakeup_sent = False  # after the pop: a later record() must wake us again
            return batch

    def _write(self, batch: list[Event | _FlushMarker]) -> None:
        events = [e for e in batch if not isinstance(e, _FlushMarker)]
        for start in range(0, len(events), _BATCH_ROWS):
            chunk = events[start : start + _BATCH_ROWS]
            try:
                self._writer.write(chunk)
                self._written += len(chunk)
            except Exception:  # analytics must never take the engine down
                log.exception("analytics: could not write %d events", len(chunk))
                self._lost += len(chunk)
        for marker in batch:
            if isinstance(marker, _FlushMarker):
                marker.done.set()


class _FlushMarker:
    """Queued by :meth:`AnalyticsCollector.flush`; set once the events before it are written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()
