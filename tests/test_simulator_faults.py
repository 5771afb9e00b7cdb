"""Every storage fault knob has the effect it promises, globally or for one file."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from civitai_tui.simulator.server import Simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def file_id(sim: Simulator) -> int:
    """A 3 MiB safetensors file (the multi-file version's primary, fixed size)."""
    return sim.catalogue.specials.multi_files[0]


async def timed_get(
    http: aiohttp.ClientSession, url: str, **headers: str
) -> tuple[aiohttp.ClientResponse, bytes, float]:
    started = time.monotonic()
    async with http.get(url, headers=headers) as response:
        body = await response.read()
    return response, body, time.monotonic() - started


async def test_per_connection_rate(sim: Simulator, http: aiohttp.ClientSession, file_id: int):
    sim.faults.set(file_id, per_connection_rate=200_000)
    _, body, elapsed = await timed_get(http, sim.signed_url(file_id), Range="bytes=0-99999")
    assert len(body) == 100_000 and elapsed >= 0.4
    other = sim.catalogue.specials.multi_files[1]
    _, _, fast = await timed_get(http, sim.signed_url(other), Range="bytes=0-99999")
    assert fast < 0.4  # the override is per file


async def test_total_rate_is_shared(sim: Simulator, http: aiohttp.ClientSession, file_id: int):
    sim.faults.set(total_rate=400_000)
    url = sim.signed_url(file_id)
    started = time.monotonic()
    results = await asyncio.gather(
        timed_get(http, url, Range="bytes=0-99999"),
        timed_get(http, url, Range="bytes=100000-199999"),
    )
    assert all(len(body) == 100_000 for _, body, _ in results)
    assert time.monotonic() - started >= 0.4


async def test_first_byte_latency(sim: Simulator, http: aiohttp.ClientSession, file_id: int):
    sim.faults.set(file_id, first_byte_latency=0.3)
    response, _, elapsed = await timed_get(http, sim.signed_url(file_id), Range="bytes=0-9")
    assert response.status == 206 and elapsed >= 0.3


async def test_reset_after_bytes(sim: Simulator, http: aiohttp.ClientSession, file_id: int):
    sim.faults.set(file_id, reset_after_bytes=10_000)
    received = 0
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(sim.signed_url(file_id)) as response:
            async for chunk in response.content.iter_any():
                received += len(chunk)
    assert 0 < received <= 10_000


async def test_stall_then_abort(sim: Simulator, file_id: int):
    sim.faults.set(file_id, stall_after_bytes=5_000, stall_seconds=2.0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=0.2)
    received = 0
    async with aiohttp.ClientSession(timeout=timeout) as http:
        with pytest.raises(asyncio.TimeoutError):
            async with http.get(sim.signed_url(file_id)) as response:
                async for chunk in response.content.iter_any():
                    received += len(chunk)
    assert received == 5_000


async def test_stall_ends_with_an_abort(sim: Simulator, http: aiohttp.ClientSession, file_id: int):
    sim.faults.set(file_id, stall_after_bytes=5_000, stall_seconds=0.2)
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(sim.signed_url(file_id)) as response:
            await response.read()


async def test_trickle(sim: Simulator, http: aiohttp.ClientSession, file_id: int):
    sim.faults.set(file_id, trickle_after_bytes=8_192, trickle_rate=20_000)
    _, body, elapsed = await timed_get(http, sim.signed_url(file_id), Range="bytes=0-18191")
    assert len(body) == 18_192 and elapsed >= 0.4


async def test_fail_status_count_and_retry_after(
    sim: Simulator, http: aiohttp.ClientSession, file_id: int
):
    sim.faults.set(file_id, fail_status=429, fail_count=2, retry_after=3)
    url = sim.signed_url(file_id)
    for _ in range(2):
        response, _, _ = await timed_get(http, url, Range="bytes=0-9")
        assert response.status == 429 and response.headers["Retry-After"] == "3"
    response, _, _ = await timed_get(http, url, Range="bytes=0-9")
    assert response.status == 206


async def test_max_connections(sim: Simulator, file_id: int):
    sim.faults.set(max_connections=1)
    url = sim.signed_url(file_id)
    async with aiohttp.ClientSession() as first, aiohttp.ClientSession() as second:
        response, _, _ = await timed_get(first, url, Range="bytes=0-9")
        assert response.status == 206  # its connection stays open (keep-alive)
        response, _, _ = await timed_get(second, url, Range="bytes=0-9")
        assert response.status == 503 and response.headers["Retry-After"] == "1"
    assert sim.stats.max_open_connections == 2


async def test_ignore_range(sim: Simulator, http: aiohttp.ClientSession, file_id: int):
    sim.faults.set(file_id, ignore_range=True)
    response, body, _ = await timed_get(http, sim.signed_url(file_id), Range="bytes=0-9")
    assert response.status == 200 and len(body) == sim.catalogue.file(file_id).size


async def test_wrong_content_length(sim: Simulator, http: aiohttp.ClientSession, file_id: int):
    sim.faults.set(file_id, wrong_content_length=True)
    response, body, _ = await timed_get(http, sim.signed_url(file_id), Range="bytes=0-99")
    assert response.headers["Content-Range"] == f"bytes 0-99/{sim.catalogue.file(file_id).size}"
    assert int(response.headers["Content-Length"]) != 100 and len(body) != 100


async def test_wrong_content_range(sim: Simulator, http: aiohttp.ClientSession, file_id: int):
    sim.faults.set(file_id, wrong_content_range=True)
    response, _, _ = await timed_get(http, sim.signed_url(file_id), Range="bytes=100-199")
    assert response.status == 206
    assert not response.headers["Content-Range"].startswith("bytes 100-")


async def test_gzip_ranged(sim: Simulator, file_id: int):
    sim.faults.set(file_id, gzip_ranged=True)
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        response, body, _ = await timed_get(
            http, sim.signed_url(file_id), Range="bytes=0-65535", **{"Accept-Encoding": "identity"}
        )
    assert response.status == 206 and response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == sim.catalogue.file(file_id).read(0, 65536)


async def test_etag_changes_with_a_new_upload(
    sim: Simulator, http: aiohttp.ClientSession, file_id: int
):
    sim.faults.set(file_id, etag_change_after_requests=1)
    url = sim.signed_url(file_id)
    first, old_body, _ = await timed_get(http, url)
    response, _, _ = await timed_get(
        http, url, Range="bytes=0-9", **{"If-Range": first.headers["ETag"]}
    )
    assert response.status == 200 and response.headers["ETag"] != first.headers["ETag"]
    _, new_body, _ = await timed_get(http, url)
    assert len(new_body) == len(old_body) and new_body != old_body


async def test_corrupt(sim: Simulator, http: aiohttp.ClientSession, file_id: int):
    sim.faults.set(file_id, corrupt=True)
    _, body, _ = await timed_get(http, sim.signed_url(file_id))
    file = sim.catalogue.file(file_id)
    assert len(body) == file.size and hashlib.sha256(body).hexdigest().upper() != file.sha256


async def test_html_body(sim: Simulator, http: aiohttp.ClientSession, file_id: int):
    sim.faults.set(html_body=True)
    response, body, _ = await timed_get(http, sim.signed_url(file_id))
    assert response.status == 200 and response.content_type == "text/html"
    assert body.startswith(b"<!DOCTYPE html>")


async def test_faults_over_http(sim: Simulator, http: aiohttp.ClientSession, file_id: int):
    control = f"{sim.api_url}/_sim/faults"
    async with http.post(control, json={"file_id": file_id, "faults": {"ignore_range": True}}) as r:
        assert r.status == 200
    async with http.post(control, json={"api_faults": {"challenge": True}}) as r:
        assert r.status == 200
    assert sim.faults.for_file(file_id).ignore_range and sim.api_faults.challenge
    async with http.post(control, json={"faults": {"no_such_knob": 1}}) as r:
        assert r.status == 400 and "no_such_knob" in (await r.json())["error"]
    async with http.delete(control) as r:
        assert r.status == 200
    assert not sim.faults.for_file(file_id).ignore_range and not sim.api_faults.challenge
    await timed_get(http, sim.signed_url(file_id), Range="bytes=0-9")
    async with http.get(f"{sim.api_url}/_sim/stats") as r:
        stats = await r.json()
    assert stats["storage_requests"] == 1 and stats["range_requests"] == [[file_id, "bytes=0-9"]]


@pytest.mark.parametrize("answer", ["503", "429", "reset", "hang"])
async def test_max_active_requests_refuses_the_way_asked(sim: Simulator, file_id: int, answer: str):
    """nginx ``limit_conn``: only responses being sent count, a closed client frees its slot."""
    sim.faults.set(
        max_active_requests=1,
        per_connection_rate=100_000,
        limit_answer=answer,
        limit_retry_after=2,
        limit_hang_seconds=0.3,
    )
    url = sim.signed_url(file_id)
    async with aiohttp.ClientSession() as first, aiohttp.ClientSession() as second:
        slow = asyncio.create_task(timed_get(first, url, Range="bytes=0-49999"))  # 0.5 s
        while not sim.stats.range_requests:
            await asyncio.sleep(0.01)
        if answer in ("reset", "hang"):
            with pytest.raises(aiohttp.ClientError):
                await timed_get(second, url, Range="bytes=0-9")
        else:
            response, _, _ = await timed_get(second, url, Range="bytes=0-9")
            assert response.status == int(answer)
            assert response.headers.get("Retry-After") == ("2" if answer == "503" else None)
        await slow
        response, _, _ = await timed_get(second, url, Range="bytes=0-9")  # the slot is free
        assert response.status == 206
    assert sim.stats.refused >= 1  # (aiohttp may retry a closed request once)


async def test_bursty_pacing_keeps_the_rate_in_bursts(sim: Simulator, file_id: int):
    sim.faults.set(file_id, per_connection_rate=400_000, pacing_burst=0.25)
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        async with http.get(sim.signed_url(file_id), headers={"Range": "bytes=0-399999"}) as r:
            chunks = [len(c) async for c in r.content.iter_chunked(1 << 20)]
        elapsed = time.monotonic() - started
    assert sum(chunks) == 400_000 and elapsed >= 0.8
    assert max(chunks) >= 50_000  # a quarter second of rate arrives at once
