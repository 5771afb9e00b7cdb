"""An engine in a fleet whose server goes away: it says so, keeps answering, never crashes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from civitai_tui.simulator.server import Simulator
from tests.helpers import embedded_engine
from tests.redis_server import RedisServer


async def test_an_unreachable_server_is_said_in_engine_status_and_the_engine_goes_on(
    sim: Simulator, redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="civitai_tui.fleet")
    config = f'[fleet]\nurl = "{redis_server.url}"\nname = "node-a"\nlease = 3\n'
    async with embedded_engine(sim, tmp_path / "home", config) as (engine, client, _):

        async def fleet_state() -> dict[str, object]:
            return (await client.status())["fleet_engine"]

        assert (await fleet_state())["name"] == "node-a"
        redis_server.stop(kill=True)
        deadline = asyncio.get_running_loop().time() + 30
        while (await fleet_state())["server_error"] is None:
            assert asyncio.get_running_loop().time() < deadline, "never said unreachable"
            await asyncio.sleep(0.05)
        assert engine.fleet_worker is not None and engine.fleet_worker._tasks
        assert not any(t.done() for t in engine.fleet_worker._tasks)  # nothing crashed
        redis_server.start()
        while (await fleet_state())["server_error"] is not None:
            assert asyncio.get_running_loop().time() < deadline + 30, "never recovered"
            await asyncio.sleep(0.05)
    said = [r.getMessage() for r in caplog.records if r.name == "civitai_tui.fleet.worker"]
    assert any("unreachable" in m and "no new work is taken" in m for m in said), said
    assert any("answers again" in m for m in said), said
