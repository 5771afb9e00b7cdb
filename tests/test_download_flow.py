"""End-to-end downloads against the simulator: segments, naming, skip, events, secrets."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from test_download_support import (
    MiB,
    downloader,
    fast_settings,
    leftovers,
    pick,
    request_for,
)

from civitai_tui.download.ranges import RangeSet
from civitai_tui.download.request import DirectSource, DownloadRequest
from civitai_tui.download.session import create_download_session
from civitai_tui.download.transfer import Transfer
from civitai_tui.events import (
    EventBus,
    FileCompleted,
    FileInfo,
    FileProgress,
    FileStarted,
    SecurityScanFinished,
)
from civitai_tui.simulator.server import Simulator


async def test_multi_connection_download_verifies_and_uses_ranges(
    sim: Simulator, tmp_path: Path
) -> None:
    file = pick(sim, 2 * MiB, 6 * MiB)
    bus = EventBus()
    events = bus.subscribe()
    async with downloader(fast_settings(connections=6), bus) as dl:
        result = await dl.download(request_for(sim, file, tmp_path))
    assert result.status == "completed", result.error
    assert result.verified and result.sha256 == file.sha256.lower()
    assert result.path == tmp_path / file.name and result.bytes == file.size
    assert result.fetched_bytes == file.size and result.connections >= 4
    assert hashlib.sha256(result.path.read_bytes()).hexdigest() == file.sha256.lower()
    assert leftovers(tmp_path) == [file.name]  # no .part, no control file
    ranges = [r for fid, r in sim.stats.range_requests if fid == file.id]
    assert len(ranges) >= 4 and all(r and r.startswith("bytes=") for r in ranges)
    assert sim.stats.storage_auth_headers == []
    kinds = [type(e) for e in events.drain()]
    assert kinds[0] is FileStarted and FileCompleted in kinds
    assert SecurityScanFinished in kinds and FileProgress in kinds


async def test_name_from_content_disposition_utf8(sim: Simulator, tmp_path: Path) -> None:
    ref = sim.catalogue.specials.unicode_name
    file = sim.catalogue.file(ref.file_id)
    assert file is not None
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, tmp_path, named=False))
    assert result.status == "completed", result.error
    assert result.path is not None and result.path.name == file.name
    assert not file.name.isascii()


async def test_existing_good_file_is_skipped_without_network(
    sim: Simulator, tmp_path: Path
) -> None:
    file = pick(sim, 64 * 1024, 1 * MiB)
    async with downloader() as dl:
        first = await dl.download(request_for(sim, file, tmp_path))
        before = sim.stats.storage_requests
        second = await dl.download(request_for(sim, file, tmp_path))
    assert first.status == "completed" and second.status == "skipped"
    assert second.verified and second.fetched_bytes == 0
    assert sim.stats.storage_requests == before


async def test_no_published_hash_is_recorded_unverified(sim: Simulator, tmp_path: Path) -> None:
    file = pick(sim, 64 * 1024, 1 * MiB)
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, tmp_path, verify=False))
    assert result.status == "completed" and not result.verified
    assert result.sha256 is None  # nothing to check against: not hashed
    assert result.path is not None and result.path.read_bytes() == file.read(0, file.size)
    (tmp_path / file.name).unlink()
    async with downloader(fast_settings(hash_unpublished=True)) as dl:
        result = await dl.download(request_for(sim, file, tmp_path, verify=False))
    assert not result.verified and result.sha256 == file.sha256.lower()


async def test_blake3_only_is_verified(sim: Simulator, tmp_path: Path) -> None:
    file = sim.catalogue.file(sim.catalogue.specials.blake3_only.file_id)
    assert file is not None
    req = request_for(sim, file, tmp_path, verify=False, blake3=file.blake3)
    async with downloader() as dl:
        result = await dl.download(req)
    assert result.status == "completed" and result.verified


async def test_live_connection_change(sim: Simulator, tmp_path: Path) -> None:
    file = pick(sim, 2 * MiB, 6 * MiB)
    sim.faults.set(file.id, per_connection_rate=2 * MiB)
    bus = EventBus()
    async with downloader(fast_settings(connections=1), bus) as dl:
        bus.add_callback(lambda e: dl.set_connections(6) if isinstance(e, FileStarted) else None)
        result = await dl.download(request_for(sim, file, tmp_path))
    assert result.status == "completed", result.error
    assert result.connections >= 4


async def test_no_worker_starts_once_the_transfer_is_shutting_down(tmp_path: Path) -> None:
    """A connection that ends as its transfer is torn down (a cancel, a pause, a fatal
    error) may ask for more work: none starts, and its range stays free for a resume."""
    request = DownloadRequest(
        info=FileInfo(key="k", name="f.bin"),
        source=DirectSource("http://127.0.0.1:9/f.bin"),
        dest_dir=tmp_path,
    )
    async with create_download_session() as session:
        transfer = Transfer(session, request, fast_settings(), EventBus())
        transfer.ranges = RangeSet(8 * MiB, 1 * MiB)

        async def asks_for_work_as_it_ends() -> None:
            try:
                await asyncio.sleep(30)
            finally:
                transfer._ensure_workers()

        async def fails() -> None:
            raise ValueError("a fatal error")

        with pytest.raises(ExceptionGroup) as caught:
            async with asyncio.TaskGroup() as group:
                transfer._tg = group
                group.create_task(asks_for_work_as_it_ends())
                await asyncio.sleep(0)
                group.create_task(fails())
    assert [type(e) for e in caught.value.exceptions] == [ValueError]
    assert transfer._workers == {} and transfer.ranges.owners == 0
