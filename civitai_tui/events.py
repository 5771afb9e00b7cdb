"""The event bus: typed, frozen events and a non-blocking fan-out to subscribers.

Every part of the engine tells the world what happened only by publishing here.
Rules (docs/architecture.md, "The event bus"):

* ``publish`` never blocks and never raises because of a slow subscriber.
* Each queue subscriber has a bound; :class:`FileProgress` events coalesce per
  file (the latest value wins, in the place of the first pending one), droppable
  samples (:class:`MetricsSample`) are dropped oldest-first when the queue is
  full, and every other event (state changes, completions, failures) is kept.
* Callback subscribers run synchronously inside ``publish``; they must be cheap
  (the analytics collector only appends to a buffer).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
import typing
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every bus event: a wall-clock ``ts`` and a stable ``type`` string."""

    type: ClassVar[str] = "event"
    #: Droppable events may be discarded (oldest first) by a lagging subscriber.
    droppable: ClassVar[bool] = False
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the ``type`` first."""
        return {"type": self.type, **dataclasses.asdict(self)}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Event | None:
        """The event :meth:`to_dict` made (read from JSON), or None for a type not in
        :data:`EVENT_TYPES` (a newer engine's: the reader skips it).

        A known type whose fields differ from its class (one renamed, missing or
        added) raises :class:`EventFormatError` naming them: never a silent default.
        """
        cls = EVENT_TYPES.get(data.get("type", ""))
        return None if cls is None else _build(cls, data, cls.type)


class EventFormatError(ValueError):
    """An event whose fields do not match this version's class (engine and UI differ)."""


@functools.cache
def _shape(cls: type) -> tuple[frozenset[str], frozenset[str], dict[str, type]]:
    """``cls``'s field names, the required ones, and those holding a :class:`FileInfo`."""
    fields = dataclasses.fields(cls)
    hints = typing.get_type_hints(cls)
    required = frozenset(
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    nested = {f.name: FileInfo for f in fields if hints[f.name] is FileInfo}
    return frozenset(f.name for f in fields), required, nested


def _build(cls: type[Any], data: Mapping[str, Any], what: str) -> Any:
    names, required, nested = _shape(cls)
    given = {k: v for k, v in data.items() if k != "type"}
    if not (names >= given.keys() >= required):
        problems = [
            f"{word} {', '.join(sorted(keys))}"
            for word, keys in (
                ("missing", required - given.keys()),
                ("unknown", given.keys() - names),
            )
            if keys
        ]
        raise EventFormatError(
            f"{what} event does not match this version: {'; '.join(problems)} "
            "(the engine and the UI are different versions: restart the engine)"
        )
    for name, kind in nested.items():
        if isinstance(given.get(name), Mapping):
            given[name] = _build(kind, given[name], f"{what}.{name}")
    return cls(**given)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileInfo:
    """What we know about a file being downloaded (no secrets: URLs are masked)."""

    key: str
    name: str
    size: int | None = None
    host: str = ""
    job_id: str | None = None
    model_id: int | None = None
    version_id: int | None = None
    file_id: int | None = None
    model_name: str = ""
    version_name: str = ""
    model_type: str = ""
    base_model: str = ""
    creator: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FileStarted(Event):
    type: ClassVar[str] = "file_started"
    file: FileInfo
    resumed_bytes: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FileProgress(Event):
    type: ClassVar[str] = "file_progress"
    key: str
    done: int
    total: int | None
    speed: float  # bytes/s, smoothed
    connections: int = 1
    #: Of them, those with an answer (the rest wait for theirs) ...
    serving: int | None = None
    #: ... and those waiting longer than a request takes (a server may never answer).
    stuck: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FileCompleted(Event):
    type: ClassVar[str] = "file_completed"
    file: FileInfo
    path: str
    bytes: int
    fetched_bytes: int
    sha256: str | None  # None: no published hash, so none was computed
    duration: float
    connections: int = 1
    retries: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FileFailed(Event):
    type: ClassVar[str] = "file_failed"
    file: FileInfo
    kind: str  # a FailureKind value, e.g. "auth", "not_found", "hash_mismatch"
    message: str  # user-facing, already redacted
    status: int | None = None
    attempts: int = 1
    quarantined: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryScheduled(Event):
    type: ClassVar[str] = "retry_scheduled"
    key: str
    attempt: int
    delay: float
    reason: str
    status: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityScanFinished(Event):
    type: ClassVar[str] = "security_scan_finished"
    key: str
    verdict: str  # "clean" | "dangerous" | "error" | "skipped"
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobStateChanged(Event):
    type: ClassVar[str] = "job_state_changed"
    job_id: str
    old: str | None
    new: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSaveFailed(Event):
    """Writes to ``state.db`` fail (``message`` says why), or work again (``recovered``)."""

    type: ClassVar[str] = "state_save_failed"
    message: str
    recovered: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSample(Event):
    type: ClassVar[str] = "metrics_sample"
    droppable: ClassVar[bool] = True
    cpu_percent: float
    memory_percent: float
    engine_cpu_percent: float = 0.0
    engine_rss: int = 0
    throughput: float = 0.0  # bytes/s, all files
    connections: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class OptimizerDecision(Event):
    type: ClassVar[str] = "optimizer_decision"
    setting: str
    old: Any
    new: Any
    reason: str
    host: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkConditionChanged(Event):
    type: ClassVar[str] = "network_condition_changed"
    old: str | None
    new: str
    mean_speed: float = 0.0


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        FileStarted,
        FileProgress,
        FileCompleted,
        FileFailed,
        RetryScheduled,
        SecurityScanFinished,
        JobStateChanged,
        StateSaveFailed,
        MetricsSample,
        OptimizerDecision,
        NetworkConditionChanged,
    )
}


class _ProgressSlot:
    """A pending progress event whose value is replaced in place (latest wins)."""

    __slots__ = ("event",)

    def __init__(self, event: FileProgress) -> None:
        self.event = event


class Subscription:
    """One subscriber's bounded queue; iterate it with ``async for``."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._maxsize = maxsize
        self._items: deque[Event | _ProgressSlot] = deque()
        self._progress: dict[str, _ProgressSlot] = {}
        self._wakeup = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if isinstance(event, FileProgress):
            slot = self._progress.get(event.key)
            if slot is not None:
                slot.event = event
                return
            slot = self._progress[event.key] = _ProgressSlot(event)
            self._items.append(slot)
        else:
            if event.droppable and len(self._items) >= self._maxsize:
                self._drop_oldest_droppable()
            self._items.append(event)
        self._wakeup.set()

    def _drop_oldest_droppable(self) -> None:
        for i, item in enumerate(self._items):
            if isinstance(item, Event) and item.droppable:
                del self._items[i]
                self.dropped += 1
                return

    def _pop(self) -> Event:
        item = self._items.popleft()
        if isinstance(item, _ProgressSlot):
            event = item.event
            del self._progress[event.key]
            return event
        return item

    def get_nowait(self) -> Event | None:
        """The next pending event, or None."""
        return self._pop() if self._items else None

    def drain(self) -> list[Event]:
        """Every pending event, in order."""
        out = []
        while self._items:
            out.append(self._pop())
        return out

    async def get(self) -> Event:
        """Wait for the next event; raises ``asyncio.CancelledError`` when closed."""
        while not self._items:
            if self._closed:
                raise asyncio.CancelledError("subscription closed")
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._pop()

    def __len__(self) -> int:
        return len(self._items)

    async def __aiter__(self) -> AsyncIterator[Event]:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                yield await self.get()

    def close(self) -> None:
        """Stop receiving; a waiting ``get`` ends."""
        self._closed = True
        self._wakeup.set()
        self._bus._unsubscribe(self)


Callback = Callable[[Event], None]


class EventBus:
    """In-process fan-out of :class:`Event` objects to queues and callbacks."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._callbacks: list[Callback] = []

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        """A new queue subscriber (use on the publisher's event loop)."""
        sub = Subscription(self, maxsize)
        self._subscriptions.append(sub)
        return sub

    def add_callback(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event)`` synchronously on every publish; returns an unsubscriber."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def _unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(sub)

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every subscriber without blocking."""
        for sub in self._subscriptions:
            sub._offer(event)
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:  # a broken subscriber must not break the publisher
                log.exception("event callback %r failed", callback)


NULL_BUS = EventBus()
"""A bus nobody listens to, for code run without an engine."""
