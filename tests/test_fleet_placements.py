"""Fleet-wide dedupe: a file one engine placed on shared storage is linked, not fetched,
by another (real redis-server, two managers with their own state dirs, the simulator)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from test_engine_truth import small_models

from civitai_tui.bulk.jobs import FileState, JobOptions
from civitai_tui.bulk.manager import BulkDownloadManager, ManagerSettings
from civitai_tui.fleet.link import LimitsLink
from civitai_tui.fleet.placements import FleetPlacements, parse_entry, parse_roots
from civitai_tui.simulator.server import Simulator
from tests.helpers import TOKEN
from tests.redis_server import RedisServer


@pytest.fixture
def server(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
async def redis(server: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(server, decode_responses=True)
    yield client
    await client.aclose()


def placements(redis: Redis, engine: str, shared: Path) -> FleetPlacements:
    return FleetPlacements(redis, LimitsLink(), engine, [shared.resolve()])


@asynccontextmanager
async def manager(
    sim: Simulator, state: Path, index: FleetPlacements
) -> AsyncIterator[BulkDownloadManager]:
    state.mkdir(parents=True)
    m = BulkDownloadManager(ManagerSettings(state_dir=state, base_url=sim.api_url, api_key=TOKEN))
    m.placements = index
    await m.start()
    try:
        yield m
    finally:
        await m.stop()


async def test_a_file_on_shared_storage_is_linked_not_fetched_again(
    sim: Simulator, redis: Redis, tmp_path: Path
) -> None:
    shared = tmp_path / "nas"
    ((model, primary),) = small_models(sim, 1)
    async with manager(sim, tmp_path / "a", placements(redis, "a", shared)) as first:
        job = await first.add_job([f"model:{model.id}"], options=_dest(shared / "a"))
        assert await first.wait([job.id], timeout=60)
    sent = sim.stats.storage_bytes_sent
    hits = sum(sim.stats.download_hits.values())
    async with manager(sim, tmp_path / "b", placements(redis, "b", shared)) as second:
        job = await second.add_job([f"model:{model.id}"], options=_dest(shared / "b"))
        assert await second.wait([job.id], timeout=60)
        (f,) = second.get(job.id).files
    assert f.state is FileState.SKIPPED and f.method == "hardlink"
    assert f.origin == str((shared / "a" / primary.name).resolve())
    assert sim.stats.storage_bytes_sent == sent  # not one byte fetched again
    assert sum(sim.stats.download_hits.values()) == hits  # nor one /api/download
    assert (shared / "b" / primary.name).stat().st_ino == (
        shared / "a" / primary.name
    ).stat().st_ino


async def test_local_disks_and_changed_copies_are_downloaded(
    sim: Simulator, redis: Redis, tmp_path: Path
) -> None:
    shared = tmp_path / "nas"
    ((model, primary),) = small_models(sim, 1)
    local = tmp_path / "local-a"
    async with manager(sim, tmp_path / "a", placements(redis, "a", shared)) as first:
        job = await first.add_job([f"model:{model.id}"], options=_dest(local))
        assert await first.wait([job.id], timeout=60)
    index = placements(redis, "b", shared)
    assert await index.find(primary.sha256) is None  # on engine a's own disk: not offered
    # An entry on shared storage whose bytes changed since: offered, refused by its hash.
    changed = shared / "x" / primary.name
    changed.parent.mkdir(parents=True)
    changed.write_bytes(b"\0" * primary.size)
    await placements(redis, "c", shared).add(changed, primary.sha256)
    assert await index.find(primary.sha256) == changed.resolve()
    sent = sim.stats.storage_bytes_sent
    async with manager(sim, tmp_path / "b", index) as second:
        job = await second.add_job([f"model:{model.id}"], options=_dest(shared / "b"))
        assert await second.wait([job.id], timeout=60)
        (f,) = second.get(job.id).files
    assert f.state is FileState.COMPLETED and f.method == "download"
    assert sim.stats.storage_bytes_sent >= sent + primary.size


async def test_server_gone_means_download(tmp_path: Path) -> None:
    client = Redis.from_url(f"unix://{tmp_path}/none.sock", decode_responses=True)
    index = FleetPlacements(client, LimitsLink(), "a", [tmp_path])
    (tmp_path / "f").write_bytes(b"x")
    await index.add(tmp_path / "f", "ab" * 32)  # dropped with a log line, no raise
    assert await index.find("ab" * 32) is None
    await client.aclose()


def test_roots_are_absolute() -> None:
    assert parse_roots("/mnt/nas::~/models") == (Path("/mnt/nas"), Path.home() / "models")


@given(st.text(max_size=80), st.text(max_size=80))
def test_entries_from_the_server_are_parsed_or_refused(field: str, value: str) -> None:
    entry = parse_entry(field, value)
    if entry is not None:
        engine, path, shared, size = entry
        assert engine and path.is_absolute() and size >= 0 and isinstance(shared, bool)


@given(
    st.text(min_size=1, max_size=20).filter(lambda s: "\n" not in s),
    st.booleans(),
    st.integers(min_value=0, max_value=1 << 50),
)
def test_entries_written_are_read_back(engine: str, shared: bool, size: int) -> None:
    field = f"{engine}\n/mnt/nas/model.safetensors"
    value = json.dumps({"shared": shared, "size": size})
    assert parse_entry(field, value) == (
        engine,
        Path("/mnt/nas/model.safetensors"),
        shared,
        size,
    )


def _dest(path: Path) -> JobOptions:
    return JobOptions(dest=str(path))
