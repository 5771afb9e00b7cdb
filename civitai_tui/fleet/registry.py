"""Which engines are in the fleet: each one's heartbeat on the server, read by ``fleet status``.

An engine writes ``ctf:engine:{name}`` (host, pid, state dir, files in flight, bytes per
second) every few seconds with a time to live of three beats, and its name with the time
into ``ctf:engines``: an engine whose hash expired is shown as gone, with when it was
last seen.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis

from civitai_tui.fleet.queue import PREFIX

#: Seconds between heartbeats; an engine silent for ``TTL_BEATS`` of them is gone.
BEAT_SECONDS = 2.0
TTL_BEATS = 3


@dataclass(frozen=True)
class EngineBeat:
    """What one engine says about itself at each heartbeat."""

    name: str
    host: str
    pid: int
    state_dir: str
    in_flight: int
    bytes_per_second: float
    started_at: float
    last_seen: float = 0.0
    alive: bool = True

    @classmethod
    def here(cls, name: str, state_dir: str, started_at: float) -> EngineBeat:
        return cls(name, socket.gethostname(), os.getpid(), state_dir, 0, 0.0, started_at)


async def beat(client: aioredis.Redis, me: EngineBeat, prefix: str = PREFIX) -> None:
    """Say this engine is alive (one round trip)."""
    now = time.time()
    fields = {k: str(v) for k, v in asdict(me).items() if k not in ("alive", "last_seen")}
    key = prefix + "engine:" + me.name
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={**fields, "last_seen": str(now)})
        pipe.expire(key, round(BEAT_SECONDS * TTL_BEATS) + 1)
        pipe.zadd(prefix + "engines", {me.name: now})
        await pipe.execute()


async def leave(client: aioredis.Redis, name: str, prefix: str = PREFIX) -> None:
    """Say this engine stopped (its files were released first)."""
    await client.delete(prefix + "engine:" + name)


async def engines(client: aioredis.Redis, prefix: str = PREFIX) -> list[EngineBeat]:
    """Every engine that ever beat, alive ones first, then by name."""
    names = await client.zrange(prefix + "engines", 0, -1, withscores=True)
    async with client.pipeline(transaction=False) as pipe:
        for name, _ in names:
            pipe.hgetall(prefix + "engine:" + name)
        answers = await pipe.execute()
    found = []
    for (name, seen), data in zip(names, answers, strict=True):
        if data:
            found.append(
                EngineBeat(
                    name=name,
                    host=data.get("host", ""),
                    pid=int(data.get("pid", 0)),
                    state_dir=data.get("state_dir", ""),
                    in_flight=int(data.get("in_flight", 0)),
                    bytes_per_second=float(data.get("bytes_per_second", 0)),
                    started_at=float(data.get("started_at", 0)),
                    last_seen=float(data.get("last_seen", seen)),
                )
            )
        else:
            found.append(EngineBeat(name, "", 0, "", 0, 0.0, 0.0, last_seen=seen, alive=False))
    return sorted(found, key=lambda e: (not e.alive, e.name))
