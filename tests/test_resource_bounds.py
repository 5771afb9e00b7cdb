"""Resource bounds against hostile servers and inputs: every one ends in a clear error, soon,
in bounded memory."""

from __future__ import annotations

import asyncio
import itertools
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from civitai_tui.civitai.client import ApiLimits
from civitai_tui.civitai.targets import MAX_TARGET_FILE, expand_target_args
from civitai_tui.download.downloader import FileDownloader
from civitai_tui.download.request import DirectSource, DownloadRequest
from civitai_tui.download.retry import RetryPolicy
from civitai_tui.download.session import create_download_session
from civitai_tui.download.settings import DownloadSettings
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import FileInfo
from tests.hostile_storage import hostile
from tests.loopback import serve_app
from tests.test_civitai_client import make_client

MIB = 1024 * 1024


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def test_a_gzip_bomb_answer_is_refused_in_bounded_memory() -> None:
    async with hostile("gzip_bomb", size=512 * MIB) as server:
        base = server.url.rsplit("/", 1)[0]
        before = peak_rss()
        async with make_client(base, limits=ApiLimits(max_body=4 * MIB)) as client:
            with pytest.raises(CivitaiTuiError) as info:
                await client.get_model(1)
    assert info.value.kind is FailureKind.API
    assert "larger than 4 MiB once decompressed" in info.value.message
    assert "api.max_answer_mb" in info.value.message
    assert peak_rss() - before < 128 * MIB  # the 512 MiB were never held


@pytest.fixture
async def endless_listing() -> AsyncIterator[str]:
    """A model list whose every page names a new next cursor."""
    ids = itertools.count(1)

    async def page(_: web.Request) -> web.Response:
        n = next(ids)
        return web.json_response(
            {"items": [{"id": n, "name": f"m{n}"}], "metadata": {"nextCursor": f"c{n}"}}
        )

    app = web.Application()
    app.router.add_get("/api/v1/models", page)
    async with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}"


async def test_an_endless_listing_stops_with_a_clear_message(endless_listing: str) -> None:
    seen = []
    async with make_client(endless_listing, limits=ApiLimits(max_pages=5)) as client:
        with pytest.raises(CivitaiTuiError) as info:
            async with asyncio.timeout(30):
                async for model in client.iter_models(tag="x"):
                    seen.append(model.id)
    assert seen == [1, 2, 3, 4, 5]
    assert "stopped after 5 pages (5 models)" in info.value.message
    assert "api.max_listing_pages" in info.value.message


#: Tight limits so that a hostile server is caught in seconds, not minutes.
#: The defaults scaled down: stall and slow-speed window 30 s -> 1 s, file stall 300 s -> 4 s.
FAST_FAIL = DownloadSettings(
    connections=2,
    stall_timeout=1.0,
    file_stall_timeout=4.0,
    min_speed=1024,
    min_speed_window=1.0,
    retry=RetryPolicy(max_attempts=8, base_delay=0.02, cap=0.2, jitter=0.0),
)


async def fetch(url: str, dest: Path, size: int | None = None):
    request = DownloadRequest(
        info=FileInfo(key="k", name="model.raw", size=size, host="127.0.0.1"),
        source=DirectSource(url),
        dest_dir=dest,
        filename="model.raw",
        expected_size=size,
    )
    async with create_download_session() as session:
        async with asyncio.timeout(60):
            return await FileDownloader(session, settings=FAST_FAIL).download(request)


@pytest.mark.slow
async def test_a_trickling_server_fails_the_file(tmp_path: Path) -> None:
    """A byte every 0.05 s keeps every per-connection timer happy, and still fails the file."""
    async with hostile("slowloris", interval=0.05, body=b"x" * 100_000) as server:
        result = await fetch(server.url, tmp_path, 100_000)
    assert result.status == "failed"
    assert result.error is not None and result.error.kind is FailureKind.STALLED
    assert "the server trickles" in result.error.message  # the file floor, not a retry count
    assert not (tmp_path / "model.raw").exists()


@pytest.mark.parametrize("behaviour", ["endless_headers", "long_length", "short_length"])
async def test_lying_and_endless_answers_never_complete_a_file(
    tmp_path: Path, behaviour: str
) -> None:
    async with hostile(behaviour) as server:
        result = await fetch(server.url, tmp_path, 4096)
    assert result.status == "failed", behaviour
    assert result.error is not None and result.error.kind in (
        FailureKind.PROTOCOL,
        FailureKind.NETWORK,
        FailureKind.SIZE_MISMATCH,
        FailureKind.STALLED,
    ), result.error
    assert not (tmp_path / "model.raw").exists()


def test_an_endless_target_file_is_refused() -> None:
    with pytest.raises(CivitaiTuiError) as info:
        expand_target_args(["@/dev/zero"])
    assert info.value.kind is FailureKind.BAD_TARGET and "split it" in info.value.message


def test_a_huge_target_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "targets.txt"
    with open(big, "wb") as fh:
        fh.truncate(1 << 30)  # sparse: 1 GiB of NULs
    before = peak_rss()
    with pytest.raises(CivitaiTuiError) as info:
        expand_target_args([f"@{big}"])
    assert f"larger than {MAX_TARGET_FILE >> 20} MiB" in info.value.message
    assert peak_rss() - before < 64 * MIB
