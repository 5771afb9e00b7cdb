"""Helpers test modules import: the simulator's token, an embedded engine, a forward proxy.

Fixtures stay in ``conftest.py`` (pytest finds them there); what a test imports by
name lives here, so no test module imports ``conftest``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from civitai_tui.engine.client import EngineClient
    from civitai_tui.engine.core import Engine
    from civitai_tui.simulator.server import Simulator

#: A realistic-looking CivitAI key (32 lowercase hex) that the simulator accepts.
TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


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
