"""Shared fixtures: a real simulator on loopback, an isolated state dir."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from civitai_tui.engine.client import EngineClient
    from civitai_tui.engine.core import Engine
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

#: A realistic-looking CivitAI key (32 lowercase hex) that the simulator accepts.
TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


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


@asynccontextmanager
async def embedded_engine(
    sim: Simulator, home: Path, config: str
) -> AsyncIterator[tuple[Engine, EngineClient, Path]]:
    """An engine on the simulator with its control API on ``home/engine.sock``, and a client."""
    from civitai_tui.config import Config, Environment
    from civitai_tui.engine.client import EngineClient
    from civitai_tui.engine.core import Engine
    from civitai_tui.engine.server import start_api

    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(config)
    engine = Engine(
        home,
        config=Config.load(home / "config.toml", environ={}),
        environment=Environment(sim.api_url, TOKEN),
    )
    await engine.start()
    socket = home / "engine.sock"
    runner = await start_api(engine, socket)
    try:
        async with EngineClient(socket) as client:
            yield engine, client, socket
    finally:
        await runner.cleanup()
        await engine.stop()


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


@dataclass
class RunningProxy:
    """A forward proxy process (``civitai_tui.simulator.proxy``) on loopback."""

    port: int

    def url(self, scheme: str = "http", auth: str | None = None) -> str:
        return f"{scheme}://{auth + '@' if auth else ''}127.0.0.1:{self.port}"

    async def carried(self) -> dict[str, int]:
        """What the proxy carried: ``{"connect 127.0.0.1:PORT": n, ...}``."""
        import aiohttp

        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}/stats") as resp,
        ):
            return (await resp.json())["requests"]


@asynccontextmanager
async def forward_proxy(*args: str) -> AsyncIterator[RunningProxy]:
    """Run the proxy in its own process with ``args`` (``--auth``, ``--mode``)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "civitai_tui.simulator.proxy", *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("listening on "), line
        yield RunningProxy(int(line.rsplit(":", 1)[1]))
    finally:
        proc.terminate()
        await proc.wait()


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
