"""The fleet's engine registry on a real server: heartbeats, expiry, leaving."""

from __future__ import annotations

import asyncio
import time

from civitai_tui.fleet import registry
from civitai_tui.fleet.connection import parse_fleet_url
from civitai_tui.fleet.registry import EngineBeat
from tests.redis_server import RedisServer


async def test_engines_beat_expire_and_leave(redis_server: RedisServer) -> None:
    client = parse_fleet_url(redis_server.url, "test").client()
    try:
        a = EngineBeat.here("node-a", "/srv/a", time.time())
        b = EngineBeat.here("node-b", "/srv/b", time.time())
        await registry.beat(client, a)
        await registry.beat(client, b)
        seen = await registry.engines(client)
        assert [(e.name, e.alive, e.state_dir) for e in seen] == [
            ("node-a", True, "/srv/a"),
            ("node-b", True, "/srv/b"),
        ]
        await client.pexpire("ctf:engine:node-b", 50)  # a beat missed long enough
        deadline = time.monotonic() + 10
        while (await registry.engines(client))[-1].alive and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        gone = (await registry.engines(client))[-1]
        assert (gone.name, gone.alive) == ("node-b", False) and gone.last_seen > 0
        await registry.leave(client, "node-a")
        assert not any(e.alive for e in await registry.engines(client))
    finally:
        await client.aclose()
