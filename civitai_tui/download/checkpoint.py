"""Checkpoints of one transfer in its control file (aria2's progress-info file).

A :class:`Checkpointer` loads what an earlier run left beside the ``.part`` (only
with a validator, so a changed file on the server is noticed), and saves the
finished spans and the signed link: from the ticker every ``checkpoint_seconds``
or ``checkpoint_bytes`` (in a thread, the data fsynced first, so the control
file never claims bytes that are not on disk), and once more when a run ends
unfinished. A ``kill -9`` loses at most one checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from civitai_tui.download.control import ControlState, load_control, remove_control, save_control
from civitai_tui.download.settings import DownloadSettings

log = logging.getLogger(__name__)


class Checkpointed(Protocol):
    """What a checkpoint saves: a transfer's open ``.part`` and its progress."""

    name: str | None
    fd: int | None

    @property
    def part(self) -> Path: ...

    @property
    def ctl(self) -> Path: ...

    def control_state(self) -> ControlState | None:
        """What to save now; None: nothing resumable (one stream, or no size yet)."""
        ...


class Checkpointer:
    """Loads and saves one transfer's control file."""

    def __init__(self, owner: Checkpointed, settings: DownloadSettings) -> None:
        self._owner = owner
        self._settings = settings
        #: Held while the data is fsynced and the control file written: whoever closes
        #: the ``.part`` takes it too, so a save never meets a closed (or reused) fd.
        self.lock = threading.Lock()
        self._saving = False
        self._task: asyncio.Future[None] | None = None
        self._time = 0.0
        self._fetched = 0

    def load(self) -> ControlState | None:
        """The saved progress to resume from, if any is usable."""
        owner = self._owner
        if not owner.part.exists():
            remove_control(owner.ctl)
            return None
        control = load_control(owner.ctl)
        if control is None:
            return None
        if not (control.etag or control.last_modified):
            log.info("resume state for %s has no validator: starting from zero", owner.name)
            return None
        return control

    def begin(self, now: float) -> None:
        """An attempt starts: the next checkpoint is due a full interval from ``now``."""
        self._time = now

    def tick(self, now: float, fetched: int) -> None:
        """From the ticker: start a checkpoint in a thread when one is due (one at a time)."""
        settings = self._settings
        if self._saving or (
            now - self._time < settings.checkpoint_seconds
            and fetched - self._fetched < settings.checkpoint_bytes
        ):
            return
        self._saving = True
        self._time, self._fetched = now, fetched
        self._task = asyncio.ensure_future(self._save_in_thread())

    def save_final(self) -> None:
        """On pause, failure or a crash-like exit: save what is on disk for a resume."""
        state = self._owner.control_state()
        if state is None:
            return
        try:
            self._save(state)
        except OSError as exc:
            log.warning("could not save resume state for %s: %s", self._owner.name, exc)

    async def _save_in_thread(self) -> None:
        try:
            state = self._owner.control_state()
            if state is not None:
                await asyncio.to_thread(self._save, state)
        except OSError as exc:
            log.warning("checkpoint of %s failed: %s", self._owner.name, exc)
        finally:
            self._saving = False

    def _save(self, state: ControlState) -> None:
        """fsync the data, then record the spans snapshotted before it (thread-safe)."""
        with self.lock:
            fd = self._owner.fd
            if fd is None:
                return
            os.fsync(fd)
            save_control(self._owner.ctl, state)
