"""TUI fixtures: an embedded engine on the simulator, the app attached to it, a poller."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from textual.pilot import Pilot

from civitai_tui.engine.client import EngineClient
from civitai_tui.engine.core import Engine
from civitai_tui.simulator.server import Simulator
from civitai_tui.tui.app import CivitaiTuiApp, make_app
from tests.helpers import embedded_engine

SIZE = (120, 40)


async def until(pilot: Pilot[None], check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Let the app run until ``check()`` holds, or fail at the deadline.

    A ``LookupError`` (the row is not there yet) counts as "not yet".
    """
    deadline = time.monotonic() + timeout
    while not _holds(check):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await pilot.pause(0.05)


def _holds(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except LookupError:
        return False


@dataclass
class Live:
    """An embedded engine, a client of its control API, and the state dir."""

    engine: Engine
    client: EngineClient
    home: Path

    def app(self) -> CivitaiTuiApp:
        return make_app(self.client, self.home)


@pytest.fixture
async def live(sim: Simulator, tmp_path: Path) -> AsyncIterator[Live]:
    config = "[bulk]\nstrategy = 'sequential'\nbatch_size = 1\n[ui]\nrefresh_hz = 10\n"
    home = tmp_path / "state"
    async with embedded_engine(sim, home, config) as (engine, client, _):
        yield Live(engine, client, home)
