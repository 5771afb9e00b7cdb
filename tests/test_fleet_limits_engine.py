"""An engine with ``fleet.url`` paces, budgets and dedupes through the fleet server; its
status shows the limits shared, then degraded while the server is gone; the API key
never reaches the server."""

from __future__ import annotations

import json
from pathlib import Path

from redis.asyncio import Redis
from test_engine_truth import small_models
from test_fleet_pacing import all_server_text

from civitai_tui.simulator.server import Simulator
from tests.helpers import TOKEN, embedded_engine
from tests.redis_server import RedisServer


async def test_an_engine_shares_its_limits_and_degrades_without_the_server(
    sim: Simulator, redis_server: RedisServer, tmp_path: Path
) -> None:
    nas = tmp_path / "nas"
    config = f'[fleet]\nurl = "{redis_server.url}"\nname = "one"\nshared_roots = "{nas}"\n'
    (first, a), (second, b) = small_models(sim, 2)
    async with embedded_engine(sim, tmp_path / "home", config) as (engine, client, _):
        job = await client.add([f"model:{first.id}"], options={"dest": str(nas)})
        assert (await client.wait([job["id"]], 60))["ok"]
        status = await client.status()
        limits = status["fleet_limits"]
        assert limits["state"] == "shared" and limits["reason"] == ""
        assert limits["api"]["download"]["engines"] == 1
        await client.set_config("api.downloads_per_second", 5.0)  # live: the shared pacer
        assert (await client.status())["fleet_limits"]["api"]["download"]["ceiling"] == 5.0
        assert engine.fleet_limits is not None
        assert engine.fleet_limits.downloads._local.max_rate == 5.0  # its 1/N share too
        redis = Redis.from_url(redis_server.url)
        text = await all_server_text(redis)
        await redis.aclose()
        assert b"ctf:limits:api:" in text and a.sha256.lower().encode() in text
        assert TOKEN.encode() not in text  # the key never, only its HMAC
        assert str(nas / a.name).encode() in text  # the placement, on shared storage

        redis_server.stop(kill=True)
        job = await client.add([f"model:{second.id}"], options={"dest": str(nas)})
        assert (await client.wait([job["id"]], 60))["ok"]  # downloads go on without it
        limits = (await client.status())["fleet_limits"]
        assert limits["state"] == "degraded"
        assert "Connection" in limits["reason"] or "no answer within" in limits["reason"]
        assert (nas / b.name).is_file()
        assert engine.fleet_limits is not None
    assert json.dumps(limits)  # plain JSON for `fleet status`
