"""Shared API pacing against a real redis-server: rate across engines, shared backoff,
degraded pacing while the server is gone, and the API key never on the server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from civitai_tui.fleet.keyid import ANONYMOUS, KeyIds, key_id
from civitai_tui.fleet.link import LimitsLink, LimitsState
from civitai_tui.fleet.pacing import SharedRateLimiter
from tests.helpers import TOKEN
from tests.redis_server import RedisServer

RATE = 20.0
BURST = 3


@pytest.fixture
def server(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
async def redis(server: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(server)
    yield client
    await client.aclose()


def limiter(
    redis: Redis, engine: str, token: Callable[[], str | None] = lambda: TOKEN, **kw: float
) -> SharedRateLimiter:
    link = LimitsLink(timeout=kw.pop("timeout", 1.0), retry_seconds=kw.pop("retry", 0.2))
    return SharedRateLimiter(
        redis, link, KeyIds(redis, link, token), engine, "download", kw.get("rate", RATE), BURST
    )


def most_in_window(stamps: list[float], window: float = 1.0) -> int:
    """The most grants any ``window`` seconds held."""
    stamps, most, lo = sorted(stamps), 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= window:
            lo += 1
        most = max(most, hi - lo + 1)
    return most


async def test_three_engines_share_one_rate(redis: Redis) -> None:
    engines = [limiter(redis, f"e{i}") for i in range(3)]
    stamps: list[float] = []

    slots: list[float] = []

    async def run(lim: SharedRateLimiter) -> None:
        for _ in range(15):
            await lim.acquire()
            stamps.append(time.monotonic())
            slots.append(lim.last_slot / 1000)

    started = time.monotonic()
    await asyncio.gather(*(run(lim) for lim in engines))
    # 45 requests at 20/s with a burst of 3: the last cannot come before (45 - 3) / 20 s.
    assert stamps[-1] - started >= (45 - BURST) / RATE * 0.95
    # The slots the server gave (its clock: a busy machine cannot bunch them up).
    assert most_in_window(slots) <= RATE + BURST
    assert engines[0].engines == 3  # each sees the others on the key


async def test_different_keys_do_not_share(redis: Redis) -> None:
    mine, theirs = limiter(redis, "a"), limiter(redis, "b", lambda: "another-token-0000")
    await asyncio.gather(mine.acquire(), theirs.acquire())
    mine.slow_down(retry_after=1.0)
    await mine.settle()
    await asyncio.gather(mine.acquire(), theirs.acquire())
    # The server's own answers (load cannot skew them): only my key waits out Retry-After.
    assert mine.last_wait >= 0.9 and theirs.last_wait == 0
    assert (mine.engines, theirs.engines) == (1, 1)


async def test_a_429_on_one_engine_slows_the_others(redis: Redis) -> None:
    first, second = limiter(redis, "first"), limiter(redis, "second")
    await first.acquire()
    first.slow_down(retry_after=1.0)
    await first.settle()
    started = time.monotonic()
    await second.acquire()
    assert time.monotonic() - started >= 0.9  # the other engine waited out Retry-After
    assert second.rate <= RATE / 2 + RATE * 0.05  # and paces at the halved rate
    # A burst of refusals is one signal: the rate is halved once, not per refusal.
    before = second.rate
    for _ in range(5):
        second.slow_down()
    await second.settle()
    assert second.rate == pytest.approx(before / 2, rel=0.05)


def test_key_id_is_an_hmac_and_anonymous_callers_share_one() -> None:
    salt = bytes(32)
    assert key_id(salt, TOKEN) == key_id(salt, TOKEN) != key_id(bytes([1] * 32), TOKEN)
    assert TOKEN not in key_id(salt, TOKEN)
    assert key_id(salt, None) == key_id(salt, "") == ANONYMOUS


async def all_server_text(redis: Redis) -> bytes:
    """Every key and value on the server, whatever its type."""
    out = b""
    async for name in redis.scan_iter(count=1000):
        kind = (await redis.type(name)).decode()
        out += name + b"\n"
        if kind == "string":
            out += await redis.get(name) or b""
        elif kind == "hash":
            for k, v in (await redis.hgetall(name)).items():
                out += k + b"=" + v + b"\n"
        elif kind == "zset":
            for member, score in await redis.zrange(name, 0, -1, withscores=True):
                out += member + str(score).encode() + b"\n"
        elif kind == "set":
            out += b"\n".join(await redis.smembers(name))
        elif kind == "list":
            out += b"\n".join(await redis.lrange(name, 0, -1))
        else:
            raise AssertionError(f"scan does not read {kind} keys yet ({name!r})")
    return out


async def test_the_api_key_never_reaches_the_server(redis: Redis) -> None:
    lim = limiter(redis, "e1")
    await lim.acquire()
    lim.slow_down(retry_after=0.1)
    await lim.settle()
    text = await all_server_text(redis)
    assert text  # the limiter did store its state
    assert TOKEN.encode() not in text and TOKEN.upper().encode() not in text


@pytest.mark.slow
async def test_server_gone_degrades_to_a_share_and_recovers(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    engines = [limiter(client, f"e{i}") for i in range(3)]
    await asyncio.gather(*(lim.acquire() for lim in engines))
    lim = engines[0]
    await lim.acquire()
    assert lim.engines == 3
    redis_server.stop(kill=True)
    # The server is gone: pacing goes on at 1/3 of the shared rate, never raises.
    started = time.monotonic()
    for _ in range(5):
        await lim.acquire()
    assert lim._link.state is LimitsState.DEGRADED
    assert "ConnectionError" in lim._link.snapshot()["reason"]
    # 5 at 20/3 per second with a burst of 1: at least 4 intervals of 0.15 s.
    assert time.monotonic() - started >= 4 / (RATE / 3) * 0.9
    redis_server.start()  # back on the same socket
    deadline = time.monotonic() + 10
    while lim._link.state is not LimitsState.SHARED:
        assert time.monotonic() < deadline, "never rejoined the shared bucket"
        await lim.acquire()
    await client.aclose()


WORKER = """
import asyncio, json, sys, time
from redis.asyncio import Redis
from civitai_tui.fleet.keyid import KeyIds
from civitai_tui.fleet.link import LimitsLink
from civitai_tui.fleet.pacing import SharedRateLimiter

async def main(url, name, seconds, slow_at):
    redis = Redis.from_url(url)
    link = LimitsLink()
    lim = SharedRateLimiter(redis, link, KeyIds(redis, link, lambda: sys.argv[5]), name,
                            "download", float(sys.argv[6]), 3)
    stamps = []
    end = time.time() + seconds
    while time.time() < end:
        await lim.acquire()
        stamps.append(lim.last_slot / 1000)  # the server's slot: load cannot bunch these
        if slow_at and len(stamps) == slow_at:
            now = await redis.time()  # the server's clock just before the 429 is reported
            stamps.append(-(now[0] + now[1] / 1e6))
            lim.slow_down(retry_after=1.0)
            await lim.settle()
    print(json.dumps(stamps))
    await redis.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
"""


def run_workers(url: str, slow_at: list[int], seconds: float = 3.0) -> list[list[float]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, f"p{i}", str(seconds), str(s), TOKEN, str(RATE)],
            stdout=subprocess.PIPE,
        )
        for i, s in enumerate(slow_at)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return [json.loads(o) for o in outs]


@pytest.mark.slow
def test_resolutions_across_three_processes_stay_within_the_shared_rate(server: str) -> None:
    runs = run_workers(server, [0, 0, 0])
    stamps = sorted(t for run in runs for t in run)
    assert all(run for run in runs)  # every process got its turns
    assert most_in_window(stamps) <= RATE + BURST
    # ... and the fleet reaches the rate: over the middle of the run, near RATE a second.
    middle = [t for t in stamps if stamps[0] + 1 <= t < stamps[0] + 2.5]
    assert len(middle) >= RATE * 1.5 * 0.8


@pytest.mark.slow
def test_a_429_in_one_process_pauses_the_other_processes(server: str) -> None:
    runs = run_workers(server, [10, 0, 0], seconds=4.0)
    reported = -next(t for t in runs[0] if t < 0)
    others = sorted(t for run in runs[1:] for t in run if t > 0)
    # Retry-After 1 s: past the slots reserved before it (one 50 ms slot per process), no
    # other process got one in the rest of that second ...
    assert not [t for t in others if reported + 0.3 < t < reported + 1.0]
    # ... and they carried on afterwards.
    assert [t for t in others if t > reported + 1.0]


async def test_a_server_refusing_the_scripts_degrades_never_fails(redis: Redis) -> None:
    """An ACL that forbids EVALSHA/EVAL (or any error answer) leaves pacing local."""
    await redis.execute_command(
        "ACL", "SETUSER", "limited", "on", ">pw", "~*", "+@all", "-@scripting"
    )
    path = redis.connection_pool.connection_kwargs["path"]
    limited = Redis(unix_socket_path=path, username="limited", password="pw")
    lim = limiter(limited, "e1")
    await lim.acquire()  # paced locally, no exception
    assert lim._link.state is LimitsState.DEGRADED
    assert "NoPermission" in lim._link.snapshot()["reason"]
    await limited.aclose()
