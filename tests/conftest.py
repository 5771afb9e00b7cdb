"""Shared fixtures: a real simulator on loopback, an isolated state dir."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

# Test modules import these from tests.helpers; conftest re-exports them only so that a
# branch written before the move still runs (remove once none imports tests.conftest).
from tests.helpers import TOKEN, embedded_engine, forward_proxy  # noqa: F401

if TYPE_CHECKING:
    from civitai_tui.simulator.server import Simulator
    from tests.engine_cli import Cli


# Property tests: a bounded budget (the whole suite must stay under 10 minutes on 2
# shared cores) and no per-example deadline (a loaded machine is not a failure).
# HYPOTHESIS_PROFILE=deep runs many more examples when attacking it by hand.
settings.register_profile(
    "suite",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("deep", parent=settings.get_profile("suite"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

#: The fleet tests' real Valkey/Redis server fixtures.
pytest_plugins = ["tests.redis_server"]

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state dir and no inherited CivitAI settings."""
    home = tmp_path / "home"
    monkeypatch.setenv("CIVITAI_TUI_HOME", str(home))
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    monkeypatch.delenv("CIVITAI_BASE_URL", raising=False)
    for name in PROXY_VARIABLES:  # a developer's proxy must not route the suite's loopback
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setattr("civitai_tui.net.network._installed", None)  # read afresh per test
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


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root only; skipped elsewhere): a disk that fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a 1 MiB tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
async def tls_sim() -> AsyncIterator[Simulator]:
    """A simulator whose API and storage origins both serve HTTPS (``tls_sim.ca``)."""
    from civitai_tui.simulator.server import start_simulator

    simulator = await start_simulator(tokens={TOKEN}, tls="all")
    try:
        yield simulator
    finally:
        await simulator.close()


@pytest.fixture
def clis() -> Iterator[list[Cli]]:
    """CLIs made by a test; whatever engine they leave running is killed at the end."""
    from tests.engine_cli import gone, kill

    made: list[Cli] = []
    yield made
    for cli in made:
        with contextlib.suppress(OSError, ValueError):
            pid = cli.engine_pid()
            if not gone(pid):
                kill(pid)
