"""End-to-end downloads against the simulator: segments, naming, skip, events, secrets."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from test_download_support import (
    MiB,
    downloader,
    fast_settings,
    leftovers,
    pick,
    request_for,
)

from civitai_tui.download import disk
from civitai_tui.download.downloader import FileDownloader
from civitai_tui.download.ranges import RangeSet
from civitai_tui.download.request import DirectSource, DownloadRequest
from civitai_tui.download.session import create_download_session
from civitai_tui.download.transfer import Transfer, part_path
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import (
    EventBus,
    FileCompleted,
    FileInfo,
    FileProgress,
    FileStarted,
    SecurityScanFinished,
)
from civitai_tui.simulator.server import Simulator
from tests.loopback import serve_app


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


BODY = bytes(range(256)) * 64


@pytest.fixture
def readonly_fd(tmp_path: Path) -> Iterator[int]:
    path = tmp_path / "ro.part"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


def test_a_part_file_in_a_missing_folder_is_a_filesystem_error(tmp_path: Path) -> None:
    with pytest.raises(CivitaiTuiError) as err:
        disk.open_part(tmp_path / "gone" / "m.part")
    assert err.value.kind is FailureKind.FILESYSTEM
    assert "gone/m.part" in err.value.message and "check the folder" in err.value.message


def test_writes_and_reservations_on_an_unwritable_file_fail_clearly(
    readonly_fd: int, tmp_path: Path
) -> None:
    where = tmp_path / "ro.part"
    for call in (
        lambda: disk.pwrite_all(readonly_fd, memoryview(b"data"), 0, where),
        lambda: disk.preallocate(readonly_fd, 1024, where),
    ):
        with pytest.raises(CivitaiTuiError) as err:
            call()
        assert err.value.kind is FailureKind.FILESYSTEM and str(where) in err.value.message


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_device_is_disk_full_and_keeps_the_partial_data(tmp_path: Path) -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(CivitaiTuiError) as err:
            disk.pwrite_all(fd, memoryview(b"x" * 4096), 0, tmp_path)
    finally:
        os.close(fd)
    assert err.value.kind is FailureKind.DISK_FULL
    assert "partial download is kept: free some space, then retry" in err.value.message


def test_an_empty_file_needs_no_reservation(tmp_path: Path) -> None:
    path = tmp_path / "e.part"
    path.write_bytes(b"stale bytes")
    fd = disk.open_part(path)
    try:
        disk.preallocate(fd, 0, path)
    finally:
        os.close(fd)
    assert path.stat().st_size == 0


class Origin:
    """A loopback file server that counts the requests for its one file."""

    def __init__(self) -> None:
        self.hits = 0
        self.url = ""

    async def serve(self, _: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(body=BODY, content_type="application/octet-stream")


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    state = Origin()
    app = web.Application()
    app.router.add_get("/f.raw", state.serve)
    async with serve_app(app) as port:
        state.url = f"http://127.0.0.1:{port}/f.raw"
        yield state


def request(url: str, dest: Path, size: int | None) -> DownloadRequest:
    return DownloadRequest(
        info=FileInfo(key="k", name="f.raw", size=size, host="127.0.0.1"),
        source=DirectSource(url),
        dest_dir=dest,
        filename="f.raw",
        expected_size=size,
    )


async def test_a_present_file_of_the_listed_size_is_skipped_without_a_request(
    origin: Origin, tmp_path: Path
) -> None:
    (tmp_path / "f.raw").write_bytes(b"z" * len(BODY))
    async with create_download_session() as session:
        result = await FileDownloader(session).download(request(origin.url, tmp_path, len(BODY)))
    assert (result.status, result.bytes, origin.hits) == ("skipped", len(BODY), 0)


async def test_a_present_file_with_nothing_to_compare_is_fetched_again(
    origin: Origin, tmp_path: Path
) -> None:
    (tmp_path / "f.raw").write_bytes(b"old")
    async with create_download_session() as session:
        result = await FileDownloader(session).download(request(origin.url, tmp_path, None))
    assert result.status == "completed" and origin.hits >= 1
    assert (tmp_path / "f.raw").read_bytes() == BODY


async def test_a_destination_that_is_a_file_fails_before_any_request(
    origin: Origin, tmp_path: Path
) -> None:
    blocker = tmp_path / "models"
    blocker.write_text("not a folder")
    async with create_download_session() as session:
        result = await FileDownloader(session).download(
            request(origin.url, blocker / "sub", len(BODY))
        )
    assert result.status == "failed" and origin.hits == 0
    assert result.error is not None and result.error.kind is FailureKind.FILESYSTEM
    assert "check the folder" in result.error.message
    assert blocker.read_text() == "not a folder"


async def test_discarding_needs_a_name_to_know_which_part_file(tmp_path: Path) -> None:
    part = part_path(tmp_path, "f.raw")
    part.write_bytes(b"partial")
    named = request("http://127.0.0.1:9/f.raw", tmp_path, None)
    async with create_download_session() as session:
        downloader = FileDownloader(session)
        downloader.discard_partial(dataclasses.replace(named, filename=None))
        assert part.exists()  # unknown name: nothing is guessed or deleted
        downloader.discard_partial(named)
    assert not part.exists()


@pytest.mark.parametrize(
    ("text", "total", "keep"),
    [
        ("auto", 100 * disk.GiB, disk.GiB),  # 2 % would be 2 GiB: capped at 1 GiB
        ("auto", disk.MiB, disk.MiB // 50),  # a 1 MiB volume keeps 20 KiB, not 64 MiB
        (" AUTO ", 10 * disk.GiB, 10 * disk.GiB // 50),
        ("0", disk.GiB, 0),
        ("512MiB", disk.GiB, 512 * disk.MiB),
        ("2GB", disk.GiB, 2 * 10**9),
        ("1.5k", disk.GiB, 1536),
        ("5%", 200 * disk.MiB, 10 * disk.MiB),
    ],
)
def test_min_free_space_rules(text: str, total: int, keep: int) -> None:
    assert disk.parse_free_space(text).on(total) == keep


@pytest.mark.parametrize("text", ["", "lots", "-1", "1XB", "51%", "nan%", "5 %%", "1e9"])
def test_bad_min_free_space_values_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        disk.parse_free_space(text)


def test_a_bad_min_free_space_in_config_is_refused_with_the_rules(tmp_path: Path) -> None:
    from civitai_tui.config import OPTIONS, ConfigError

    with pytest.raises(ConfigError) as err:
        OPTIONS["download.min_free_space"].coerce("plenty")
    assert "download.min_free_space" in err.value.message and "5%" in err.value.message
    assert OPTIONS["download.min_free_space"].coerce(" 2GiB ") == "2GiB"
