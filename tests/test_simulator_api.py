"""The simulator's API origin behaves like civitai.com: listing, metadata, by-hash, downloads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from civitai_tui.simulator.server import Simulator, start_simulator
from tests.helpers import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get_json(http: aiohttp.ClientSession, url: str, status: int = 200, **kwargs: Any) -> Any:
    async with http.get(url, **kwargs) as response:
        assert response.status == status, await response.text()
        return await response.json()


async def test_cursor_walk_visits_every_model_once(sim: Simulator, http: aiohttp.ClientSession):
    url: str | None = f"{sim.api_url}/api/v1/models?limit=7&nsfw=true&sort=Newest"
    seen: list[int] = []
    pages = 0
    while url:
        body = await get_json(http, url)
        seen += [item["id"] for item in body["items"]]
        meta = body["metadata"]
        assert "currentPage" not in meta and "totalItems" not in meta
        url = meta.get("nextPage")
        if url:
            query = parse_qs(urlsplit(url).query)
            assert query["cursor"] == [meta["nextCursor"]]
            assert query["limit"] == ["7"] and query["sort"] == ["Newest"]
        pages += 1
    assert sorted(seen) == sorted(m.id for m in sim.catalogue.models)
    assert len(seen) == len(set(seen)) == 40
    assert pages == 6


async def test_page_limits_and_query_rules(sim: Simulator, http: aiohttp.ClientSession):
    base = f"{sim.api_url}/api/v1/models"
    too_far = await get_json(http, f"{base}?page=11&limit=100", 429)
    assert too_far == {"error": "You've requested too many pages, please use cursors instead"}
    mixed = await get_json(http, f"{base}?page=1&query=lora", 400)
    assert "Use cursor-based pagination" in mixed["error"]
    assert (await get_json(http, f"{base}?limit=101", 400))["issues"][0]["path"] == ["limit"]
    bad_type = await get_json(http, f"{base}?types=Lora", 400)
    assert bad_type["issues"][0]["code"] == "invalid_enum_value"
    await get_json(http, f"{base}?sort=Best", 400)
    await get_json(http, f"{base}?cursor=garbage", 400)
    page2 = await get_json(http, f"{base}?page=2&limit=5")
    assert page2["metadata"]["currentPage"] == 2 and page2["metadata"]["pageSize"] == 5
    assert "cursor=" in page2["metadata"]["nextPage"]
    assert (await get_json(http, f"{base}?favorites=true", 401)) == {"error": "Unauthorized"}


async def list_ids(http: aiohttp.ClientSession, sim: Simulator, query: str) -> list[int]:
    body = await get_json(http, f"{sim.api_url}/api/v1/models?{query}")
    return [item["id"] for item in body["items"]]


async def test_filters(sim: Simulator, http: aiohttp.ClientSession):
    models = sim.catalogue.models
    loras = await list_ids(http, sim, "types=LORA&types=VAE&nsfw=true")
    assert set(loras) == {m.id for m in models if m.type in ("LORA", "VAE")}
    sdxl = await list_ids(http, sim, "baseModels=SDXL%201.0&nsfw=true")
    assert set(sdxl) == {
        m.id for m in models if any(v.base_model == "SDXL 1.0" for v in m.versions)
    }
    creator = models[0].creator
    by_user = await list_ids(http, sim, f"username={creator.upper()}&nsfw=true")
    assert set(by_user) == {m.id for m in models if m.creator == creator}
    tagged = await list_ids(http, sim, "tag=anime&nsfw=true")
    assert set(tagged) == {m.id for m in models if "anime" in m.tags}
    assert await list_ids(http, sim, "query=trio") == [sim.catalogue.specials.multi_file.model_id]
    wanted = [models[1].id, models[2].id]
    assert set(await list_ids(http, sim, f"ids={wanted[0]},{wanted[1]}")) == set(wanted)
    safe = await list_ids(http, sim, "")
    assert set(safe) == {m.id for m in models if not m.nsfw} and len(safe) < len(models)


async def test_sort_period_and_primary_only(sim: Simulator, http: aiohttp.ClientSession):
    by_id = {m.id: m for m in sim.catalogue.models}
    newest = await list_ids(http, sim, "sort=Newest&nsfw=true")
    dates = [by_id[i].last_published_at for i in newest]
    assert dates == sorted(dates, reverse=True)
    oldest = await list_ids(http, sim, "sort=Oldest&nsfw=true")
    assert [by_id[i].last_published_at for i in oldest] == sorted(dates)
    downloads = [
        by_id[i].stats.download_count for i in await list_ids(http, sim, "sort=Most%20Downloaded")
    ]
    assert downloads == sorted(downloads, reverse=True)
    day = await list_ids(http, sim, "period=Day&nsfw=true")
    year = await list_ids(http, sim, "period=Year&nsfw=true")
    assert 0 < len(day) < len(year) < len(newest)
    multi = sim.catalogue.specials.multi_file.model_id
    body = await get_json(http, f"{sim.api_url}/api/v1/models?ids={multi}&primaryFileOnly=true")
    files = body["items"][0]["modelVersions"][0]["files"]
    assert len(files) == 1 and files[0]["primary"] is True


async def test_model_by_id_and_archived(sim: Simulator, http: aiohttp.ClientSession):
    assert await get_json(http, f"{sim.api_url}/api/v1/models/99", 404) == {
        "error": "No model with id 99"
    }
    await get_json(http, f"{sim.api_url}/api/v1/models/abc", 400)
    archived = sim.catalogue.specials.archived
    model = await get_json(http, f"{sim.api_url}/api/v1/models/{archived.model_id}")
    assert model["mode"] == "Archived"
    version = model["modelVersions"][0]
    assert version["files"] == [] and "downloadUrl" not in version
    multi = sim.catalogue.specials.multi_file
    listed = await get_json(http, f"{sim.api_url}/api/v1/models/{multi.model_id}")
    files = listed["modelVersions"][0]["files"]
    assert [f.get("primary") for f in files] == [True, None, None]
    assert "?type=Pruned+Model&format=SafeTensor" in files[1]["downloadUrl"]


async def test_version_fields_are_realistic(sim: Simulator, http: aiohttp.ClientSession):
    assert await get_json(http, f"{sim.api_url}/api/v1/model-versions/1", 404) == {
        "error": "Model not found"
    }
    ref = sim.catalogue.specials.multi_file
    body = await get_json(http, f"{sim.api_url}/api/v1/model-versions/{ref.version_id}")
    assert body["modelId"] == ref.model_id and body["model"]["type"] == "Checkpoint"
    assert body["air"] == f"urn:air:sdxl:checkpoint:civitai:{ref.model_id}@{ref.version_id}"
    assert [f["primary"] for f in body["files"]] == [True, False, False]
    for item in body["files"]:
        sim_file = sim.catalogue.file(item["id"])
        assert sim_file is not None and item["sizeKB"] * 1024 == sim_file.size
        assert set(item["hashes"]) >= {"AutoV2", "SHA256", "CRC32", "BLAKE3"}
        assert item["hashes"]["SHA256"] == sim_file.sha256 == item["hashes"]["SHA256"].upper()
        assert item["metadata"].keys() == {"format", "size", "fp"}
        assert item["pickleScanResult"] == item["virusScanResult"] == "Success"
    image = body["images"][0]
    assert image["url"].startswith(sim.storage_url) and image["nsfwLevel"] == 1
    async with http.get(image["url"]) as response:
        png = await response.read()
    assert response.content_type == "image/png" and png.startswith(b"\x89PNG\r\n\x1a\n")


async def test_special_metadata(sim: Simulator, http: aiohttp.ClientSession):
    specials = sim.catalogue.specials

    async def first_file(ref_version: int) -> dict[str, Any]:
        body = await get_json(http, f"{sim.api_url}/api/v1/model-versions/{ref_version}")
        return body["files"][0]

    no_hashes = await first_file(specials.no_hashes.version_id)
    assert no_hashes["hashes"] == {} and no_hashes["pickleScanResult"] == "Pending"
    assert list((await first_file(specials.blake3_only.version_id))["hashes"]) == ["BLAKE3"]
    wrong = await first_file(specials.wrong_hash.version_id)
    assert wrong["hashes"]["SHA256"] != sim.catalogue.file(specials.wrong_hash.file_id).sha256
    assert (await first_file(specials.danger_flagged.version_id))["pickleScanResult"] == "Danger"
    lying = await first_file(specials.malicious_ckpt.version_id)
    assert lying["pickleScanResult"] == "Success" and lying["metadata"]["format"] == "PickleTensor"
    early = await get_json(
        http, f"{sim.api_url}/api/v1/model-versions/{specials.early_access.version_id}"
    )
    assert datetime.fromisoformat(early["earlyAccessEndsAt"]) > datetime.now(UTC)


async def test_by_hash_every_kind(sim: Simulator, http: aiohttp.ClientSession):
    ref = sim.catalogue.specials.large  # >= 2 MiB, so it has an AutoV1 too
    body = await get_json(http, f"{sim.api_url}/api/v1/model-versions/{ref.version_id}")
    hashes = body["files"][0]["hashes"]
    assert set(hashes) == {"AutoV1", "AutoV2", "SHA256", "CRC32", "BLAKE3"}
    for kind, value in hashes.items():
        found = await get_json(http, f"{sim.api_url}/api/v1/model-versions/by-hash/{value.lower()}")
        assert found["id"] == ref.version_id, kind
    await get_json(http, f"{sim.api_url}/api/v1/model-versions/by-hash/{'0' * 64}", 404)
    other = sim.catalogue.file(sim.catalogue.specials.clean_ckpt.file_id)
    url = f"{sim.api_url}/api/v1/model-versions/by-hash"
    async with http.post(url, json=[hashes["SHA256"], other.sha256.lower(), "F" * 64]) as response:
        found = await response.json()
    assert sorted(v["id"] for v in found) == sorted([ref.version_id, other.version_id])
    async with http.post(url, json=["A" * 64] * 101) as response:
        assert response.status == 400
        assert (await response.json()) == {"error": "Too many hashes"}


async def download(
    http: aiohttp.ClientSession, sim: Simulator, query: str, headers: dict[str, str] | None = None
) -> aiohttp.ClientResponse:
    url = f"{sim.api_url}/api/download/models/{query}"
    async with http.get(url, headers=headers or {}, allow_redirects=False) as response:
        await response.read()
        return response


async def test_download_redirects_to_signed_storage_url(
    sim: Simulator, http: aiohttp.ClientSession
):
    ref = sim.catalogue.specials.multi_file
    response = await download(http, sim, f"{ref.version_id}", AUTH)
    assert response.status == 307
    location = response.headers["Location"]
    assert location.startswith(f"{sim.storage_url}/files/{ref.file_id}/")
    query = parse_qs(urlsplit(location).query)
    assert int(query["expires"][0]) > datetime.now(UTC).timestamp() + 86000 and query["sig"]
    pruned = sim.catalogue.specials.multi_files[1]
    by_id = await download(http, sim, f"{ref.version_id}?fileId={pruned}&token={TOKEN}")
    assert f"/files/{pruned}/" in by_id.headers["Location"]
    by_meta = await download(
        http, sim, f"{ref.version_id}?type=Pruned%20Model&format=SafeTensor", AUTH
    )
    assert f"/files/{pruned}/" in by_meta.headers["Location"]
    mismatch = await download(http, sim, f"{ref.version_id}?type=Model&fp=bf16", AUTH)
    assert mismatch.status == 404
    assert sim.stats.download_hits[TOKEN] == 4


async def test_download_auth_errors_depend_on_user_agent(
    sim: Simulator, http: aiohttp.ClientSession
):
    version = sim.catalogue.specials.multi_file.version_id
    anonymous = await download(http, sim, f"{version}")
    assert anonymous.status == 401
    assert anonymous.content_type == "application/json"
    wrong = await download(http, sim, f"{version}", {"Authorization": "Bearer nope"})
    assert wrong.status == 401
    browser = await download(http, sim, f"{version}", BROWSER)
    assert browser.status == 307
    login = browser.headers["Location"]
    assert login.startswith("/login?") and "reason=download-auth" in login
    async with http.get(f"{sim.api_url}/api/download/models/{version}", headers=BROWSER) as page:
        html = await page.text()
    assert page.status == 200 and page.content_type == "text/html" and "Sign in" in html
    assert sim.stats.download_hits == {"": 3, "nope": 1}


async def test_download_error_forms(sim: Simulator, http: aiohttp.ClientSession):
    specials = sim.catalogue.specials
    early = await download(http, sim, f"{specials.early_access.version_id}", AUTH)
    assert early.status == 403
    async with http.get(
        f"{sim.api_url}/api/download/models/{specials.early_access.version_id}", headers=AUTH
    ) as response:
        body = await response.json()
    assert body["error"] == "Early Access"
    assert datetime.fromisoformat(body["deadline"]) > datetime.now(UTC)
    assert (await download(http, sim, f"{specials.archived.version_id}", AUTH)).status == 410
    assert (await download(http, sim, "999999999", AUTH)).status == 404
    other_file = specials.clean_ckpt.file_id
    assert (
        await download(http, sim, f"{specials.large.version_id}?fileId={other_file}", AUTH)
    ).status == 404
    assert (await download(http, sim, "0", AUTH)).status == 400


async def test_daily_quota_is_429_without_retry_after():
    sim = await start_simulator(tokens={TOKEN}, daily_quota=2)
    try:
        async with aiohttp.ClientSession() as http:
            version = sim.catalogue.specials.multi_file.version_id
            statuses = [(await download(http, sim, f"{version}", AUTH)).status for _ in range(3)]
            assert statuses == [307, 307, 429]
            async with http.get(
                f"{sim.api_url}/api/download/models/{version}", headers=AUTH, allow_redirects=False
            ) as response:
                body = await response.json()
            assert response.status == 429 and "Retry-After" not in response.headers
            assert "unusual amount of downloading" in body["error"]
            assert sim.stats.download_hits[TOKEN] == 4
    finally:
        await sim.close()


async def test_anonymous_downloads_when_tokens_not_required():
    sim = await start_simulator(require_token=False)
    try:
        async with aiohttp.ClientSession() as http:
            version = sim.catalogue.specials.multi_file.version_id
            assert (await download(http, sim, f"{version}")).status == 307
    finally:
        await sim.close()


async def test_api_faults(sim: Simulator, http: aiohttp.ClientSession):
    url = f"{sim.api_url}/api/v1/models/{sim.catalogue.models[0].id}"
    sim.api_faults.update(fail_status=503, fail_count=2, retry_after=2)
    for _ in range(2):
        async with http.get(url) as response:
            assert response.status == 503 and response.headers["Retry-After"] == "2"
    await get_json(http, url)
    sim.api_faults.update(challenge=True)
    async with http.get(url) as response:
        assert response.status == 403 and response.headers["cf-mitigated"] == "challenge"
        assert "Just a moment" in await response.text()
