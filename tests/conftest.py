"""Shared fixtures: a real simulator on loopback, an isolated state dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from civitai_tui.simulator.server import Simulator


#: A realistic-looking CivitAI key (32 lowercase hex) that the simulator accepts.
TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state dir and no inherited CivitAI settings."""
    home = tmp_path / "home"
    monkeypatch.setenv("CIVITAI_TUI_HOME", str(home))
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    monkeypatch.delenv("CIVITAI_BASE_URL", raising=False)
    return home


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A fresh simulator (API + storage origins on ephemeral loopback ports)."""
    from civitai_tui.simulator.server import start_simulator

    simulator = await start_simulator(tokens={TOKEN})
    try:
        yield simulator
    finally:
        await simulator.close()
