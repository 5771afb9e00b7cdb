"""The engine→UI bridge: follow the event stream and poll the engine, into plain state.

Two async loops run as Textual workers on the UI's event loop. ``follow_events``
reads the WebSocket (snapshot, then event batches), decodes each event once into
its class (:meth:`~civitai_tui.events.Event.from_dict`) and applies it to
:class:`EngineState`; it reconnects by itself when the link drops, and ends
(calling ``on_stopped``) when the engine says it stopped, or when an event does
not match this version's classes (saying so: a renamed field is never read as
a default).
``resync`` asks for the job list (queue order, priorities and expansions have
no event) and the selected job's detail every few seconds, or at once after a
user action. Neither touches a widget: the app's flush timer paints the state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from civitai_tui.aio import wait_event
from civitai_tui.browse.records import BrowsePage, BrowseQuery, LibraryEntry, ModelDetail
from civitai_tui.engine.client import EngineStopped
from civitai_tui.errors import CivitaiTuiError
from civitai_tui.events import Event, EventFormatError, FileStarted, JobStateChanged
from civitai_tui.tui.state import EngineState

log = logging.getLogger(__name__)

RESYNC_SECONDS = 2.0
RECONNECT_MIN, RECONNECT_MAX = 0.5, 5.0


class EngineAPI(Protocol):
    """The part of :class:`~civitai_tui.engine.client.EngineClient` the UI uses."""

    async def jobs(self) -> list[dict[str, Any]]: ...
    async def job(self, job_id: str) -> dict[str, Any]: ...
    async def add(
        self,
        targets: list[str],
        *,
        priority: int = 0,
        options: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> dict[str, Any]: ...
    async def preview(
        self, targets: list[str], options: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...
    async def action(self, job_id: str, action: str) -> dict[str, Any]: ...
    async def set_priority(self, job_id: str, priority: int) -> dict[str, Any]: ...
    async def queue_action(self, action: str) -> dict[str, Any]: ...
    async def analytics(self, days: int) -> dict[str, Any]: ...
    async def write_report(self, output: str, fmt: str, days: int) -> dict[str, Any]: ...
    async def set_config(self, key: str, value: Any) -> dict[str, Any]: ...
    async def browse_search(self, query: BrowseQuery, refresh: bool = False) -> BrowsePage: ...
    async def browse_model(self, model_id: int, refresh: bool = False) -> ModelDetail: ...
    async def browse_image(self, url: str, width: int) -> bytes: ...
    async def library(
        self, dest: list[str] | None = None, refresh: bool = False
    ) -> list[LibraryEntry]: ...
    async def queue_updates(self, version_ids: list[int], dest: str | None) -> list[str]: ...
    def events(self) -> AsyncIterator[dict[str, Any]]: ...


#: Events after which the job list itself may differ (expansion, totals, order).
RESYNC_EVENTS = (JobStateChanged, FileStarted)


def apply_message(state: EngineState, message: dict[str, Any]) -> bool:
    """One WebSocket message to ``state``: a ``snapshot`` or a batch of ``events``.

    Returns True when the job list may have changed (resync it). Raises
    :class:`EventFormatError` for an event that does not match its class.
    """
    kind = message.get("type")
    if kind == "snapshot":
        state.apply_snapshot(message.get("jobs", []), message.get("store_error"))
    elif kind == "events":
        events = [e for e in map(Event.from_dict, message.get("events", ())) if e is not None]
        state.apply_events(events)
        return any(isinstance(e, RESYNC_EVENTS) for e in events)
    return False


class EngineBridge:
    """Keeps :class:`EngineState` in step with one engine."""

    def __init__(
        self,
        client: EngineAPI,
        state: EngineState,
        on_stopped: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.state = state
        self.on_stopped = on_stopped
        self.watched_job: str | None = None
        self._wake = asyncio.Event()

    def resync_now(self) -> None:
        """Refresh the job list at once (after an action the user took)."""
        self._wake.set()

    async def follow_events(self) -> None:
        """Apply every WebSocket message; reconnect with backoff when the link drops.

        An engine that stopped (``engine stop``, a signal) ends the loop instead.
        """
        delay = RECONNECT_MIN
        while True:
            try:
                async for message in self.client.events():
                    self.state.set_connection(True, "connected")
                    if apply_message(self.state, message):
                        self.resync_now()
                    delay = RECONNECT_MIN
                reason = "the engine closed the event stream"
            except EventFormatError as err:
                log.error("%s", err)
                self.state.set_connection(False, str(err))
                return
            except EngineStopped as stopped:
                self.state.set_connection(False, stopped.message)
                if self.on_stopped is not None:
                    self.on_stopped()
                return
            except CivitaiTuiError as err:
                reason = err.message
            self.state.set_connection(False, f"engine unreachable: {reason}; reconnecting…")
            await asyncio.sleep(delay)  # reconnect backoff, not a wait for a condition
            delay = min(delay * 2, RECONNECT_MAX)

    async def resync(self, interval: float = RESYNC_SECONDS) -> None:
        """Poll the job list (and the watched job) every ``interval`` or on ``resync_now``."""
        while True:
            await self.resync_once()
            self._wake.clear()
            await wait_event(self._wake, interval)

    async def resync_once(self) -> None:
        try:
            self.state.apply_summaries(await self.client.jobs())
            if self.watched_job in self.state.jobs:
                self.state.apply_detail(await self.client.job(self.watched_job))
        except CivitaiTuiError as err:
            self.state.set_connection(False, f"engine unreachable: {err.message}")

    async def performance(self) -> None:
        """The optimizer's state, when this engine has the performance route."""
        fetch = getattr(self.client, "performance", None)
        if fetch is None:
            return
        try:
            self.state.perf.optimizer = await fetch()
        except CivitaiTuiError:
            self.state.perf.optimizer = None  # no optimizer (404) or unreachable: "no data yet"
        self.state.perf.dirty = True
