"""Pause (cancellation), crash (kill -9) and resume; corrupt resume state; disk full."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from test_download_support import (
    CountingResolver,
    KiB,
    MiB,
    dest_fixture,  # noqa: F401 - the ``dest`` fixture
    downloader,
    leftovers,
    pick,
    request_for,
)

from civitai_tui.download.control import control_path, load_control
from civitai_tui.errors import FailureKind
from civitai_tui.events import EventBus, FileProgress
from civitai_tui.simulator.server import Simulator

CHILD = """
import asyncio, sys
from pathlib import Path
from civitai_tui.download.request import DirectSource, DownloadRequest
from civitai_tui.download.session import create_download_session
from civitai_tui.download.downloader import FileDownloader
from civitai_tui.download.settings import DownloadSettings
from civitai_tui.events import FileInfo

url, dest, name, size = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])

async def main():
    settings = DownloadSettings(connections=4, min_split=128 * 1024, checkpoint_seconds=0.1)
    async with create_download_session() as session:
        dl = FileDownloader(session, settings=settings)
        req = DownloadRequest(FileInfo(key="k", name=name), DirectSource(url), dest, name, size)
        await dl.download(req)

asyncio.run(main())
"""


def parts(dest: Path, name: str) -> tuple[Path, Path]:
    part = dest / f"{name}.part"
    return part, control_path(part)


async def test_cancel_keeps_partial_and_resume_fetches_only_the_rest(
    sim: Simulator, dest: Path
) -> None:
    file = pick(sim, 2 * MiB, 4 * MiB)
    sim.faults.set(file.id, per_connection_rate=1 * MiB)
    bus = EventBus()
    reached = asyncio.Event()
    bus.add_callback(
        lambda e: (
            reached.set() if isinstance(e, FileProgress) and e.done >= file.size // 3 else None
        )
    )
    first = CountingResolver([sim.signed_url(file.id)], expires_at=time.time() + 3600)
    async with downloader(bus=bus, resolve=first) as dl:
        task = asyncio.create_task(dl.download(request_for(sim, file, dest)))
        await asyncio.wait_for(reached.wait(), 20)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    part, ctl = parts(dest, file.name)
    assert part.exists() and not (dest / file.name).exists()
    saved = load_control(ctl)
    assert saved is not None and file.size // 3 <= saved.done_bytes < file.size
    sim.faults.reset()
    resume = CountingResolver(["http://127.0.0.1:9/never-used"])
    async with downloader(resolve=resume) as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert result.status == "completed" and result.verified, result.error
    assert result.fetched_bytes == file.size - saved.done_bytes
    assert resume.calls == []  # the signed URL came from the control file
    assert leftovers(dest) == [file.name]


async def test_discard_partial_removes_part_and_control(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 1 * MiB, 3 * MiB)
    sim.faults.set(file.id, per_connection_rate=256 * KiB)
    bus = EventBus()
    started = asyncio.Event()
    bus.add_callback(lambda e: started.set() if isinstance(e, FileProgress) and e.done else None)
    request = request_for(sim, file, dest)
    async with downloader(bus=bus) as dl:
        task = asyncio.create_task(dl.download(request))
        await asyncio.wait_for(started.wait(), 20)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert parts(dest, file.name)[0].exists()
        dl.discard_partial(request)
    assert leftovers(dest) == []


@pytest.mark.slow
async def test_resume_after_kill_refetches_at_most_one_checkpoint(
    sim: Simulator, dest: Path
) -> None:
    file = pick(sim, 3 * MiB, 8 * MiB)
    sim.faults.set(file.id, per_connection_rate=512 * KiB)
    dest.mkdir()
    part, ctl = parts(dest, file.name)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        sim.signed_url(file.id),
        str(dest),
        file.name,
        str(file.size),
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            saved = load_control(ctl) if ctl.exists() else None
            if saved is not None and saved.done_bytes >= file.size // 3:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the child never checkpointed a third of the file")
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    saved = load_control(ctl)
    assert saved is not None and part.exists()
    sim.faults.reset()
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert result.status == "completed" and result.verified, result.error
    assert result.fetched_bytes == file.size - saved.done_bytes <= file.size - file.size // 3


async def test_corrupt_control_file_restarts_from_zero(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 512 * KiB, 2 * MiB)
    dest.mkdir()
    part, ctl = parts(dest, file.name)
    part.write_bytes(os.urandom(file.size))
    ctl.write_text("{garbage")
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert result.status == "completed" and result.verified, result.error
    assert result.fetched_bytes == file.size and leftovers(dest) == [file.name]


async def test_changed_file_since_last_run_restarts_cleanly(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 512 * KiB, 2 * MiB)
    dest.mkdir()
    part, ctl = parts(dest, file.name)
    part.write_bytes(bytes(file.size))
    ctl.write_text(
        json.dumps(
            {"version": 1, "size": file.size, "etag": '"old"', "done": [[0, file.size // 2]]}
        )
    )
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert result.status == "completed" and result.verified, result.error
    assert result.fetched_bytes == file.size  # the stale half was not trusted


async def test_disk_full_is_refused_before_the_network(sim: Simulator, tiny_disk: Path) -> None:
    file = pick(sim, 2 * MiB, 4 * MiB)
    before = sim.stats.storage_requests
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, tiny_disk))
    assert result.status == "failed" and result.error is not None
    assert result.error.kind is FailureKind.DISK_FULL
    assert str(tiny_disk) in result.error.message and "MiB more are needed" in result.error.message
    assert sim.stats.storage_requests == before
    assert leftovers(tiny_disk) == []


async def test_disk_full_with_unknown_size_keeps_nothing_at_final_path(
    sim: Simulator, tiny_disk: Path
) -> None:
    file = pick(sim, 2 * MiB, 4 * MiB)
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, tiny_disk, verify=False))
    assert result.status == "failed" and result.error is not None
    assert result.error.kind is FailureKind.DISK_FULL
    assert not (tiny_disk / file.name).exists()
