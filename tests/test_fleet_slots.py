"""Per-host connection budgets shared by engines, against a real redis-server and the
simulator's storage with a per-client connection limit."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from test_download_support import KiB, MiB, fast_settings, pick, request_for

from civitai_tui.download.downloader import FileDownloader
from civitai_tui.download.session import create_download_session
from civitai_tui.events import EventBus
from civitai_tui.fleet.link import LimitsLink, LimitsState
from civitai_tui.fleet.slots import SharedHostSlots
from civitai_tui.simulator.catalogue import SimFile
from civitai_tui.simulator.server import Simulator
from tests.redis_server import RedisServer


@pytest.fixture
def server(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
async def redis(server: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(server)
    yield client
    await client.aclose()


def big(sim: Simulator) -> SimFile:
    """The 128 MiB file: at the rates below it never finishes within a test."""
    return next(f for f in sim.catalogue.files() if f.name == "largeRealism_v10.safetensors")


class Engine:
    """One engine's downloader with its shared slots (in this process)."""

    def __init__(
        self, redis: Redis, name: str, ceiling: int, connections: int, ttl: float = 2.0
    ) -> None:
        self.link = LimitsLink(retry_seconds=0.2)
        self.downloader: FileDownloader | None = None
        self.slots = SharedHostSlots(
            redis,
            self.link,
            name,
            lambda _host: "nat",
            lambda: self.downloader.pool if self.downloader else None,
            lambda _host: ceiling,
            renew=0.2,
            ttl=ttl,
        )
        self.settings = fast_settings(
            connections=connections, min_split=128 * KiB, shared_budget=self.slots
        )

    async def __aenter__(self) -> Engine:
        self.session = create_download_session(limit=0, limit_per_host=64)
        self.downloader = FileDownloader(self.session, EventBus(), self.settings)
        await self.slots.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.slots.stop()
        await self.session.close()


async def until(check: Callable[[], bool], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "not reached before the deadline"
        await asyncio.sleep(0.02)


async def test_three_engines_stay_within_a_six_connection_server(
    sim: Simulator, redis: Redis, tmp_path: Path
) -> None:
    sim.faults.set(per_connection_rate=1 * MiB, max_active_requests=6, limit_answer="503")
    file = pick(sim, 3 * MiB, 4 * MiB)
    async with AsyncExitStack() as stack:
        engines = [
            await stack.enter_async_context(Engine(redis, f"e{i}", ceiling=6, connections=8))
            for i in range(3)
        ]
        results = await asyncio.gather(
            *(
                e.downloader.download(request_for(sim, file, tmp_path / f"e{i}"))
                for i, e in enumerate(engines)
                if e.downloader
            )
        )
    assert [r.status for r in results] == ["completed"] * 3
    assert sim.stats.refused == 0  # never a 7th connection: 3 engines x 8 wanted would be 24
    assert 3 <= sim.stats.max_active_requests <= 6


async def test_a_newcomer_gets_its_fair_share_from_an_engine_that_holds_everything(
    sim: Simulator, redis: Redis, tmp_path: Path
) -> None:
    sim.faults.set(per_connection_rate=256 * KiB)
    file = big(sim)
    host = urlsplit(sim.storage_url).hostname or ""
    async with Engine(redis, "first", 6, 8) as first, Engine(redis, "second", 6, 8) as second:
        assert first.downloader and second.downloader
        a = asyncio.create_task(first.downloader.download(request_for(sim, file, tmp_path / "a")))
        await until(lambda: first.downloader.pool.demand(host)[0] == 6, 20)  # type: ignore[union-attr]
        b = asyncio.create_task(second.downloader.download(request_for(sim, file, tmp_path / "b")))
        # The first sheds down to its share; the second takes the freed slots.
        await until(lambda: second.downloader.pool.demand(host)[0] == 3, 30)  # type: ignore[union-attr]
        assert first.downloader.pool.demand(host)[0] == 3
        assert first.slots.hosts[host].engines == 2
        for task in (a, b):
            task.cancel()
        await asyncio.gather(a, b, return_exceptions=True)


async def test_a_dead_engines_slots_lapse(sim: Simulator, redis: Redis, tmp_path: Path) -> None:
    sim.faults.set(per_connection_rate=256 * KiB)
    file = big(sim)
    host = urlsplit(sim.storage_url).hostname or ""
    dead = Engine(redis, "dead", 6, 8, ttl=4.0)
    async with dead:
        assert dead.downloader
        task = asyncio.create_task(dead.downloader.download(request_for(sim, file, tmp_path / "d")))
        await until(lambda: dead.slots.hosts.get(host) and dead.slots.hosts[host].granted == 6, 20)
        dead.slots._task.cancel()  # type: ignore[union-attr]  # stops renewing, keeps its slots
        dead.slots.hosts.clear()  # ... and says nothing on its way out
        async with Engine(redis, "alive", 6, 8) as alive:
            assert alive.downloader
            b = asyncio.create_task(
                alive.downloader.download(request_for(sim, file, tmp_path / "b"))
            )
            # Answered while the dead one's slots live (engines == 2): nothing for the living.
            await until(lambda: (s := alive.slots.hosts.get(host)) and s.engines == 2, 20)
            assert alive.slots.hosts[host].granted == 0  # the dead one still holds all 6
            await until(lambda: alive.slots.hosts[host].granted == 6, 20)  # its TTL lapsed
            b.cancel()
            await asyncio.gather(b, return_exceptions=True)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_learned_limit_holds_every_engine(
    sim: Simulator, redis: Redis, tmp_path: Path
) -> None:
    learned: dict[str, int | None] = {"v": None}
    host = urlsplit(sim.storage_url).hostname or ""
    teacher = Engine(redis, "teacher", 16, 8)
    teacher.slots._learned = lambda _h: learned["v"]
    sim.faults.set(per_connection_rate=256 * KiB)
    file = big(sim)
    async with teacher, Engine(redis, "pupil", 16, 8) as pupil:
        assert teacher.downloader and pupil.downloader
        tasks = [
            asyncio.create_task(e.downloader.download(request_for(sim, file, tmp_path / n)))
            for n, e in (("t", teacher), ("p", pupil))
            if e.downloader
        ]
        await until(lambda: pupil.downloader.pool.demand(host)[0] == 8, 20)  # type: ignore[union-attr]
        await until(lambda: teacher.slots.hosts[host].held_by_others == 8, 20)
        learned["v"] = 2  # the teacher's optimizer saw its own 2 served in a burst
        await until(lambda: pupil.slots.hosts[host].cap == 2 + 8, 20)
        # Both shed to their share of the learned ceiling (16 open before).
        await until(
            lambda: sum(e.downloader.pool.demand(host)[0] for e in (teacher, pupil)) <= 10, 20
        )  # type: ignore[union-attr]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.slow
async def test_server_gone_keeps_a_share_of_the_last_cap_then_rejoins(
    sim: Simulator, redis_server: RedisServer, tmp_path: Path
) -> None:
    sim.faults.set(per_connection_rate=512 * KiB)
    file = big(sim)
    host = urlsplit(sim.storage_url).hostname or ""
    client = Redis.from_url(redis_server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    async with Engine(client, "a", 6, 8) as a, Engine(client, "b", 6, 8) as b:
        assert a.downloader and b.downloader
        tasks = [
            asyncio.create_task(e.downloader.download(request_for(sim, file, tmp_path / n)))
            for n, e in (("a", a), ("b", b))
            if e.downloader
        ]
        await until(lambda: a.downloader.pool.demand(host)[0] == 3, 20)  # type: ignore[union-attr]
        redis_server.stop(kill=True)  # the server dies under them
        await until(lambda: a.link.state is LimitsState.DEGRADED, 20)
        await asyncio.sleep(0.5)  # a few renewals while degraded
        assert a.slots.hosts[host].granted == 3  # 6 // 2 engines, no more
        assert a.downloader.pool.demand(host)[0] <= 3
        assert not any(t.done() for t in tasks)  # downloads go on
        redis_server.start()  # back, empty: the engines hold their slots there again
        await until(lambda: a.link.state is LimitsState.SHARED, 30)
        await until(
            lambda: a.slots.hosts[host].engines == 2 and b.slots.hosts[host].engines == 2, 20
        )
        assert sum(e.slots.hosts[host].granted for e in (a, b)) <= 6
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()


WORKER = """
import asyncio, json, sys
from pathlib import Path
from redis.asyncio import Redis
from test_download_support import KiB, fast_settings
from civitai_tui.download.downloader import FileDownloader
from civitai_tui.download.request import DirectSource, DownloadRequest
from civitai_tui.download.session import create_download_session
from civitai_tui.events import EventBus, FileInfo
from civitai_tui.fleet.link import LimitsLink
from civitai_tui.fleet.slots import SharedHostSlots

async def main(url, name, file_url, filename, size, sha256, dest):
    redis = Redis.from_url(url, decode_responses=True)
    holder = []
    slots = SharedHostSlots(redis, LimitsLink(), name, lambda _h: "nat",
                            lambda: holder[0].pool if holder else None, lambda _h: 6,
                            renew=0.2, ttl=2.0)
    settings = fast_settings(connections=8, min_split=128 * KiB, shared_budget=slots)
    async with create_download_session(limit=0, limit_per_host=64) as session:
        holder.append(FileDownloader(session, EventBus(), settings))
        await slots.start()
        request = DownloadRequest(
            info=FileInfo(key=name, name=filename), source=DirectSource(file_url),
            dest_dir=Path(dest), filename=filename, expected_size=int(size), sha256=sha256)
        result = await holder[0].download(request)
        await slots.stop()
    print(json.dumps({"status": result.status}))
    await redis.aclose()

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.slow
async def test_three_engine_processes_stay_within_a_six_connection_server(
    sim: Simulator, server: str, tmp_path: Path
) -> None:
    sim.faults.set(per_connection_rate=1 * MiB, max_active_requests=6, limit_answer="503")
    file = pick(sim, 3 * MiB, 4 * MiB)
    tests = str(Path(__file__).parent)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            server,
            f"e{i}",
            sim.signed_url(file.id),
            file.name,
            str(file.size),
            file.sha256,
            str(tmp_path / f"e{i}"),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": tests + os.pathsep + os.environ.get("PYTHONPATH", "")},
        )
        for i in range(3)
    ]
    async with asyncio.timeout(120):
        outs = await asyncio.gather(*(p.communicate() for p in procs))
    assert [json.loads(out)["status"] for out, _ in outs] == ["completed"] * 3
    assert sim.stats.refused == 0  # 3 processes x 8 wanted, never a 7th connection
    assert 3 <= sim.stats.max_active_requests <= 6
