"""The fleet queue on a real server: priorities, leases, fencing, pause/cancel via renewal."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from civitai_tui.fleet.connection import parse_fleet_url
from civitai_tui.fleet.queue import FleetQueue
from tests.redis_server import Factory, RedisServer

LEASE = 0.4


def requests(*names: str) -> list[str]:
    return [json.dumps({"name": n}) for n in names]


@pytest.fixture
async def queue(redis_server: RedisServer) -> AsyncIterator[FleetQueue]:
    client = parse_fleet_url(redis_server.url, "test").client()
    try:
        yield FleetQueue(client)
    finally:
        await client.aclose()


async def drain(queue: FleetQueue, engine: str = "e1") -> list[str]:
    names = []
    while (claim := await queue.claim(engine, 60)) is not None:
        names.append(json.loads(claim.request)["name"])
        assert await queue.finish(claim, "completed", {})
    return names


async def test_priority_then_arrival_and_a_priority_changed_while_queued(
    queue: FleetQueue,
) -> None:
    low = await queue.add_job(requests("a1", "a2"), name="low")
    await queue.add_job(requests("b1"), name="high", priority=5)
    late = await queue.add_job(requests("c1"), name="late")
    assert await queue.control(late, "priority", 9) == "pending"
    assert await drain(queue) == ["c1", "b1", "a1", "a2"]
    jobs = {j.name: j for j in await queue.jobs(files=True)}
    assert {j.state for j in jobs.values()} == {"completed"}
    assert jobs["low"].id == low and jobs["low"].files_total == 2


async def test_fencing_tokens_grow_and_a_stale_token_changes_nothing(queue: FleetQueue) -> None:
    await queue.add_job(requests("x"), name="x")
    first = await queue.claim("e1", LEASE)
    assert first is not None
    deadline = time.monotonic() + 10
    second = None
    while second is None and time.monotonic() < deadline:  # the lease lapses on the server
        second = await queue.claim("e2", LEASE)
        await asyncio.sleep(0.05)
    assert second is not None and second.file_id == first.file_id
    assert int(second.token) > int(first.token)
    assert second.previous_engine == "e1"
    assert await queue.renew(first, LEASE) == "lost"
    assert not await queue.finish(first, "completed", {})  # fenced out
    [job] = await queue.jobs(files=True)
    assert job.state == "processing" and job.files[0].engine == "e2"
    assert await queue.finish(second, "completed", {"sha256": "ab"})
    [job] = await queue.jobs(files=True)
    assert job.state == "completed" and job.files[0].detail == {"sha256": "ab"}


async def test_renewal_keeps_the_file_and_its_checkpoint(queue: FleetQueue) -> None:
    await queue.add_job(requests("x"), name="x")
    claim = await queue.claim("e1", LEASE)
    assert claim is not None
    for done in range(5):  # renewed well within the lease: nobody else gets it
        assert await queue.renew(claim, LEASE, {"done": done}) == "run"
        assert await queue.claim("e2", LEASE) is None
        await asyncio.sleep(LEASE / 4)
    released = await queue.finish(claim, "released", {})
    assert released
    again = await queue.claim("e2", LEASE)
    assert again is not None and again.checkpoint == {"done": 4}


async def test_pause_and_cancel_reach_the_holder_at_its_next_renewal(queue: FleetQueue) -> None:
    job = await queue.add_job(requests("run", "wait"), name="j")
    claim = await queue.claim("e1", 30)
    assert claim is not None
    assert await queue.control(job, "pause") == "paused"
    assert await queue.claim("e2", 30) is None  # the queued file is held back too
    assert await queue.renew(claim, 30) == "paused"
    assert await queue.finish(claim, "released", {"done": 10})
    [paused] = await queue.jobs(files=True)
    assert [f.state for f in paused.files] == ["paused", "paused"]
    assert await queue.control(job, "resume") == "pending"
    claim = await queue.claim("e2", 30)
    assert claim is not None and json.loads(claim.request)["name"] == "run"
    assert await queue.control(job, "cancel") == "cancelled"
    assert await queue.renew(claim, 30) == "cancelled"
    assert await queue.finish(claim, "released", {})
    [cancelled] = await queue.jobs(files=True)
    assert cancelled.state == "cancelled" and cancelled.files_left == 0
    assert {f.state for f in cancelled.files} == {"cancelled"}
    assert await queue.control(job, "retry") == "pending"
    assert sorted(await drain(queue)) == ["run", "wait"]
    [done] = await queue.jobs()
    assert done.state == "completed"


async def test_a_failed_file_fails_its_job_and_retry_runs_only_it(queue: FleetQueue) -> None:
    job = await queue.add_job(requests("ok", "bad"), name="j")
    for _ in range(2):
        claim = await queue.claim("e1", 30)
        assert claim is not None
        outcome = "failed" if json.loads(claim.request)["name"] == "bad" else "completed"
        assert await queue.finish(claim, outcome, {"error": "HTTP 404"})
    [failed] = await queue.jobs()
    assert failed.state == "failed" and failed.files_failed == 1
    assert await queue.control(job, "retry") == "pending"
    assert await drain(queue) == ["bad"]
    assert (await queue.jobs())[0].state == "completed"
    assert await queue.control("nope", "pause") is None


async def test_an_engine_restarting_within_its_lease_finds_its_files(queue: FleetQueue) -> None:
    await queue.add_job(requests("a", "b"), name="j")
    mine = [await queue.claim("node-1", 30), await queue.claim("node-1", 30)]
    held = await queue.held("node-1")
    assert {(c.file_id, c.token) for c in held} == {(c.file_id, c.token) for c in mine if c}
    assert await queue.held("node-2") == []


async def test_a_server_restart_with_aof_keeps_the_queue(redis_factory: Factory) -> None:
    server = redis_factory(aof=True)
    client = parse_fleet_url(server.url, "test").client()
    queue = FleetQueue(client)
    job = await queue.add_job(requests("a", "b", "c"), name="kept", priority=2)
    claim = await queue.claim("e1", 30)
    assert claim is not None
    await client.aclose()
    server.stop(kill=True)  # a crash, not a clean shutdown
    server.start()
    client = parse_fleet_url(server.url, "test").client()
    queue = FleetQueue(client)
    try:
        [kept] = await queue.jobs(files=True)
        assert (kept.id, kept.name, kept.priority, kept.state) == (job, "kept", 2, "processing")
        assert await queue.renew(claim, 30) == "run"  # scripts reloaded, lease kept
        assert await queue.finish(claim, "completed", {})
        assert sorted(await drain(queue)) == ["b", "c"]
    finally:
        await client.aclose()


async def test_a_big_job_goes_in_chunks(queue: FleetQueue) -> None:
    job = await queue.add_job(requests(*(f"f{i}" for i in range(1234))), name="big")
    [big] = await queue.jobs(files=True)
    assert big.id == job and big.files_total == 1234 == len(big.files)
    assert await queue.queued() == 1234
