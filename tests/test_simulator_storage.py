"""The storage origin: signed URLs, strict ranges, headers, and bytes that match the metadata."""

from __future__ import annotations

import hashlib
import json
import struct
import time
from collections.abc import AsyncIterator

import aiohttp
import blake3
import pytest

from civitai_tui.simulator.content import BLOCK, PAGE
from civitai_tui.simulator.server import Simulator
from tests.helpers import TOKEN


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(read_bufsize=1 << 20) as session:
        yield session


async def fetch(
    http: aiohttp.ClientSession, url: str, **headers: str
) -> tuple[aiohttp.ClientResponse, bytes]:
    async with http.get(url, headers=headers) as response:
        return response, await response.read()


async def test_served_bytes_match_api_hashes_and_are_valid_safetensors(
    sim: Simulator, http: aiohttp.ClientSession
):
    lora = next(m for m in sim.catalogue.models if m.type == "LORA" and m.mode is None)
    ids = [lora.versions[0].files[0].id, *sim.catalogue.specials.multi_files]
    for file_id in ids:
        file = sim.catalogue.file(file_id)
        url = f"{sim.api_url}/api/v1/model-versions/{file.version_id}"
        async with http.get(url) as response:
            meta = next(f for f in (await response.json())["files"] if f["id"] == file_id)
        _, body = await fetch(http, sim.signed_url(file_id))
        assert len(body) == meta["sizeKB"] * 1024
        assert hashlib.sha256(body).hexdigest().upper() == meta["hashes"]["SHA256"]
        assert blake3.blake3(body).hexdigest().upper() == meta["hashes"]["BLAKE3"]
        if file.name.endswith(".safetensors"):
            (length,) = struct.unpack("<Q", body[:8])
            header = json.loads(body[8 : 8 + length])
            ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
            assert 8 + length + max(ends) == len(body)


async def test_pages_are_stamped_so_misplaced_segments_change_the_hash(sim: Simulator):
    file = sim.catalogue.file(sim.catalogue.specials.large.file_id)
    first, later = file.read(BLOCK, BLOCK + PAGE), file.read(2 * BLOCK, 2 * BLOCK + PAGE)
    assert first[8:] == later[8:] and first[:8] != later[:8]
    assert struct.unpack("<Q", later[:8]) == (2 * BLOCK,)


async def test_headers_of_a_full_response(sim: Simulator, http: aiohttp.ClientSession):
    ref = sim.catalogue.specials.unicode_name
    file = sim.catalogue.file(ref.file_id)
    response, body = await fetch(http, sim.signed_url(ref.file_id))
    assert response.status == 200 and len(body) == file.size
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"].startswith('"') and response.headers["Last-Modified"]
    raw = dict(response.raw_headers)[b"Content-Disposition"]
    assert raw == f'attachment; filename="{file.name}"'.encode()
    async with http.head(sim.signed_url(ref.file_id)) as head:
        assert head.status == 200 and int(head.headers["Content-Length"]) == file.size
        assert await head.read() == b""


async def test_hostile_names_reach_the_header_without_control_characters(
    sim: Simulator, http: aiohttp.ClientSession
):
    for file_id in sim.catalogue.specials.hostile_files:
        response, _ = await fetch(http, sim.signed_url(file_id))
        disposition = response.headers["Content-Disposition"]
        assert response.status == 200
        assert not any(ord(ch) < 32 and ch != "\t" for ch in disposition)
    names = [sim.catalogue.file(i).name for i in sim.catalogue.specials.hostile_files]
    assert any("../" in n for n in names) and any(len(n) > 255 for n in names)


async def test_range_forms(sim: Simulator, http: aiohttp.ClientSession):
    file = sim.catalogue.file(sim.catalogue.specials.multi_files[0])
    url, size = sim.signed_url(file.id), file.size
    response, body = await fetch(http, url, Range="bytes=100-199")
    assert response.status == 206 and response.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert body == file.read(100, 200) and response.headers["Content-Length"] == "100"
    response, body = await fetch(http, url, Range=f"bytes={size - 10}-")
    assert response.headers["Content-Range"] == f"bytes {size - 10}-{size - 1}/{size}"
    assert body == file.read(size - 10, size)
    response, body = await fetch(http, url, Range="bytes=-5")
    assert response.status == 206 and body == file.read(size - 5, size)
    response, body = await fetch(http, url, Range=f"bytes=10-{size * 2}")
    assert response.headers["Content-Range"] == f"bytes 10-{size - 1}/{size}"
    response, _ = await fetch(http, url, Range=f"bytes={size}-")
    assert response.status == 416 and response.headers["Content-Range"] == f"bytes */{size}"
    for ignored in ("bytes=5-1", "items=0-1", "bytes=abc", "bytes=0-1,5-9"):
        response, body = await fetch(http, url, Range=ignored)
        assert response.status == 200 and len(body) == size, ignored
    assert [r for _, r in sim.stats.range_requests][:2] == ["bytes=100-199", f"bytes={size - 10}-"]


async def test_if_range(sim: Simulator, http: aiohttp.ClientSession):
    file = sim.catalogue.file(sim.catalogue.specials.multi_files[1])
    url = sim.signed_url(file.id)
    first, _ = await fetch(http, url)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    response, _ = await fetch(http, url, Range="bytes=0-9", **{"If-Range": etag})
    assert response.status == 206
    response, _ = await fetch(http, url, Range="bytes=0-9", **{"If-Range": modified})
    assert response.status == 206
    response, body = await fetch(http, url, Range="bytes=0-9", **{"If-Range": '"stale"'})
    assert response.status == 200 and len(body) == file.size


async def test_bad_and_expired_signatures(sim: Simulator, http: aiohttp.ClientSession):
    file_id = sim.catalogue.specials.multi_files[0]
    good = sim.signed_url(file_id)
    response, body = await fetch(http, good.replace("sig=", "sig=0"))
    assert response.status == 403 and b"SignatureDoesNotMatch" in body
    other = sim.catalogue.specials.multi_files[1]
    response, _ = await fetch(http, good.replace(f"/files/{file_id}/", f"/files/{other}/"))
    assert response.status == 403
    response, body = await fetch(http, sim.signed_url(file_id, ttl=-1))
    assert response.status == 403 and b"Request has expired" in body
    response, _ = await fetch(
        http, f"{sim.storage_url}/files/1/x?expires={int(time.time()) + 60}&sig=a"
    )
    assert response.status == 404


async def test_token_never_reaches_storage_when_following_the_redirect(
    sim: Simulator, http: aiohttp.ClientSession
):
    ref = sim.catalogue.specials.multi_file
    url = f"{sim.api_url}/api/download/models/{ref.version_id}"
    async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        body = await response.read()
    assert response.status == 200 and len(body) == sim.catalogue.file(ref.file_id).size
    assert sim.stats.storage_auth_headers == []
    await fetch(http, sim.signed_url(ref.file_id), Authorization="Bearer leak")
    assert sim.stats.storage_auth_headers == ["Bearer leak"]


async def test_large_file_streams_fast(sim: Simulator, http: aiohttp.ClientSession):
    url = sim.signed_url(sim.catalogue.specials.large.file_id)
    started = time.monotonic()
    received = 0
    async with http.get(url, headers={"Range": f"bytes=0-{64 * BLOCK - 1}"}) as response:
        async for chunk in response.content.iter_any():
            received += len(chunk)
    elapsed = time.monotonic() - started
    assert received == 64 * BLOCK
    assert received / elapsed > 50e6  # generous: the 2 cores are shared with other work
    assert sim.stats.storage_bytes_sent == received and sim.stats.max_open_connections == 1
