"""The API client against the real simulator (and tiny local servers for odd answers)."""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.civitai.politeness import Backoff, RateLimiter
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import EventBus, RetryScheduled
from civitai_tui.simulator.catalogue import FileRef, SimFile, SimModel
from civitai_tui.simulator.server import Simulator, start_simulator
from tests.helpers import TOKEN

FAST = Backoff(attempts=3, base=0.01, cap=0.05)


def make_client(base_url: str, token: str | None = TOKEN, **kw: object) -> CivitAIClient:
    kw.setdefault("backoff", FAST)
    kw.setdefault("limiter", RateLimiter(rate=1000, burst=100))
    return CivitAIClient(base_url, token, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[CivitAIClient]:
    async with make_client(sim.api_url) as c:
        yield c


def small_plain_model(sim: Simulator) -> SimModel:
    """A healthy SFW model whose latest primary file is small."""
    specials = vars(sim.catalogue.specials).values()
    special_models = {ref.model_id for ref in specials if isinstance(ref, FileRef)}
    for model in sim.catalogue.models:
        primary = model.versions[0].primary_file()
        if (
            model.id not in special_models
            and not model.nsfw
            and model.mode is None
            and primary is not None
            and primary.size < 1 << 20
        ):
            return model
    raise AssertionError("the catalogue has no small plain model")


def primary(model: SimModel) -> SimFile:
    file = model.versions[0].primary_file()
    assert file is not None
    return file


async def expect(kind: FailureKind, call: Awaitable[object]) -> CivitaiTuiError:
    with pytest.raises(CivitaiTuiError) as info:
        await call
    assert info.value.kind is kind, info.value.message
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value.args)
    return info.value


# -- metadata -------------------------------------------------------------------------


async def test_get_model_matches_catalogue(sim: Simulator, client: CivitAIClient) -> None:
    sim_model = small_plain_model(sim)
    model = await client.get_model(sim_model.id)
    assert (model.id, model.name, model.type) == (sim_model.id, sim_model.name, sim_model.type)
    assert model.creator.username == sim_model.creator
    assert [v.id for v in model.versions] == [v.id for v in sim_model.versions]
    file = model.versions[0].primary_file()
    assert file is not None and file.size == primary(sim_model).size
    assert file.hash("SHA256") == primary(sim_model).sha256.upper()


async def test_get_version_and_not_found(sim: Simulator, client: CivitAIClient) -> None:
    sim_model = small_plain_model(sim)
    sim_version = sim_model.versions[-1]
    version = await client.get_version(sim_version.id)
    assert (version.id, version.model_id, version.name) == (
        sim_version.id,
        sim_model.id,
        sim_version.name,
    )
    assert version.model_name == sim_model.name and version.base_model == sim_version.base_model
    assert [f.id for f in version.files] == [f.id for f in sim_version.files]
    err = await expect(FailureKind.NOT_FOUND, client.get_version(2_000_000_000))
    assert "model version 2000000000" in err.message and err.status == 404
    err = await expect(FailureKind.NOT_FOUND, client.get_model(2_000_000_001))
    assert "model 2000000001" in err.message


async def test_by_hash_for_each_hash_kind(sim: Simulator, client: CivitAIClient) -> None:
    sim_model = small_plain_model(sim)
    file = primary(sim_model)
    hashes = (await client.get_version(file.version_id)).files[0].hashes
    assert {"SHA256", "AutoV2", "CRC32", "BLAKE3"} <= set(hashes)
    for kind, value in hashes.items():
        version = await client.get_version_by_hash(value.lower())
        assert version.id == file.version_id, kind
    await expect(FailureKind.NOT_FOUND, client.get_version_by_hash("0" * 64))


async def test_versions_by_hashes_batches_of_100(sim: Simulator, client: CivitAIClient) -> None:
    files = [primary(m) for m in sim.catalogue.models[:3] if m.mode is None]
    known = [f.sha256.upper() for f in files]
    unknown = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(150)]
    before = sim.stats.api_requests
    versions = await client.versions_by_hashes(unknown[:75] + known + unknown[75:])
    assert sorted(v.id for v in versions) == sorted({f.version_id for f in files})
    assert sim.stats.api_requests - before == 2  # 150 + len(known) hashes → two POSTs


async def test_cursor_paging_walks_the_whole_catalogue(
    sim: Simulator, client: CivitAIClient
) -> None:
    seen = [m.id async for m in client.iter_models(nsfw=True, page_size=7)]
    assert len(seen) == len(set(seen))
    assert set(seen) == {m.id for m in sim.catalogue.models}
    sfw = {m.id async for m in client.iter_models(page_size=9)}
    assert sfw == {m.id for m in sim.catalogue.models if not m.nsfw}


async def test_paging_with_filters(sim: Simulator, client: CivitAIClient) -> None:
    models = sim.catalogue.models
    creator = models[0].creator
    got = {m.id async for m in client.iter_models(username=creator, nsfw=True, page_size=3)}
    assert got == {m.id for m in models if m.creator == creator}
    got = {
        m.id
        async for m in client.iter_models(
            types=["LORA", "LoCon"], base_models=["SDXL 1.0"], nsfw=True, page_size=2
        )
    }
    assert got == {
        m.id
        for m in models
        if m.type in ("LORA", "LoCon") and any(v.base_model == "SDXL 1.0" for v in m.versions)
    }
    tag = models[1].tags[0]
    got = {m.id async for m in client.iter_models(tag=tag, nsfw=True)}
    assert got == {m.id for m in models if tag in m.tags}


async def test_limit_stops_early(sim: Simulator, client: CivitAIClient) -> None:
    before = sim.stats.api_requests
    got = [m async for m in client.iter_models(nsfw=True, limit=5, page_size=2)]
    assert len(got) == 5
    assert sim.stats.api_requests - before == 3


# -- resolve_download -------------------------------------------------------------------


async def test_resolve_download_and_fetch_without_token(
    sim: Simulator, client: CivitAIClient
) -> None:
    file = primary(small_plain_model(sim))
    resolved = await client.resolve_download(file.version_id, file.id)
    assert resolved.url.startswith(sim.storage_url + "/")
    assert resolved.filename == file.name
    assert resolved.expires_at is not None
    assert abs(resolved.expires_at - (time.time() + 86400)) < 120
    assert not resolved.expired()
    assert "sig=" not in repr(resolved) or "sig=***" in repr(resolved)
    async with aiohttp.ClientSession() as plain, plain.get(resolved.url) as resp:
        assert resp.status == 200
        body = await resp.read()
    assert hashlib.sha256(body).hexdigest().upper() == file.sha256.upper()
    assert sim.stats.download_hits[TOKEN] == 1
    assert sim.stats.storage_auth_headers == []


async def test_missing_token_is_auth_required(sim: Simulator) -> None:
    file = primary(small_plain_model(sim))
    async with make_client(sim.api_url, token=None) as anon:
        err = await expect(FailureKind.AUTH_REQUIRED, anon.resolve_download(file.version_id))
    assert "CIVITAI_API_KEY" in err.message and "API Keys" in err.message
    assert err.status == 401


async def test_wrong_token_is_auth_required_and_masked(sim: Simulator) -> None:
    wrong = "not-the-right-key-7f3a9"
    file = primary(small_plain_model(sim))
    async with make_client(sim.api_url, token=wrong) as bad:
        err = await expect(
            FailureKind.AUTH_REQUIRED, bad.resolve_download(file.version_id, file.id)
        )
    assert "refused" in err.message and wrong not in err.message
    assert sim.stats.download_hits  # the hit was counted, under whatever key


async def test_browser_user_agent_login_redirect_is_detected(sim: Simulator) -> None:
    file = primary(small_plain_model(sim))
    ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36"
    async with make_client(sim.api_url, token=None, user_agent=ua) as browser:
        err = await expect(FailureKind.AUTH_REQUIRED, browser.resolve_download(file.version_id))
    assert "login" in err.message and "CIVITAI_API_KEY" in err.message


async def test_download_error_forms(sim: Simulator, client: CivitAIClient) -> None:
    specials = sim.catalogue.specials
    early = specials.early_access
    err = await expect(
        FailureKind.EARLY_ACCESS, client.resolve_download(early.version_id, early.file_id)
    )
    deadline = sim.catalogue.version(early.version_id).early_access_ends_at
    assert deadline is not None and deadline.strftime("%Y-%m-%d") in err.message
    gone = specials.archived
    err = await expect(FailureKind.GONE, client.resolve_download(gone.version_id))
    assert err.status == 410 and "archived" in err.message
    err = await expect(FailureKind.NOT_FOUND, client.resolve_download(1_999_999_999))
    assert "1999999999" in err.message


async def test_quota_429_is_not_retried() -> None:
    simulator = await start_simulator(tokens={TOKEN}, daily_quota=1)
    try:
        file = primary(small_plain_model(simulator))
        async with make_client(simulator.api_url) as c:
            await c.resolve_download(file.version_id, file.id)
            err = await expect(FailureKind.QUOTA, c.resolve_download(file.version_id, file.id))
        assert "quota" in err.message and not err.retryable
        assert simulator.stats.download_hits[TOKEN] == 2
    finally:
        await simulator.close()


# -- retries, challenges, odd answers ---------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_metadata_rate_limit_is_retried(sim: Simulator, status: int) -> None:
    bus = EventBus()
    sub = bus.subscribe()
    sim.api_faults.fail_status = status
    sim.api_faults.fail_count = 2
    sim.api_faults.retry_after = 1
    model = small_plain_model(sim)
    async with make_client(sim.api_url, bus=bus) as c:
        started = time.monotonic()
        assert (await c.get_model(model.id)).id == model.id
        assert time.monotonic() - started < 1.0  # Retry-After 1 s was capped to 0.05 s
    retries = [e for e in sub.drain() if isinstance(e, RetryScheduled)]
    assert [(e.attempt, e.status) for e in retries] == [(1, status), (2, status)]
    assert all(e.delay == pytest.approx(0.05) for e in retries)
    assert TOKEN not in repr(retries)


async def test_metadata_rate_limit_gives_up(sim: Simulator, client: CivitAIClient) -> None:
    sim.api_faults.fail_status = 429
    sim.api_faults.fail_count = 10
    err = await expect(FailureKind.RATE_LIMITED, client.get_model(small_plain_model(sim).id))
    assert err.retryable and "rate-limiting" in err.message


async def test_challenge_page(sim: Simulator, client: CivitAIClient) -> None:
    sim.api_faults.challenge = True
    err = await expect(FailureKind.CHALLENGE, client.get_model(small_plain_model(sim).id))
    assert "bot-check" in err.message


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def tiny() -> AsyncIterator[Callable[[dict[str, Handler]], Awaitable[str]]]:
    """Start throwaway loopback servers from ``{path: handler}``; returns their origin."""
    runners: list[web.AppRunner] = []

    async def start(routes: dict[str, Handler]) -> str:
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_route("*", path, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_html_where_json_expected(tiny: Callable[..., Awaitable[str]]) -> None:
    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    base = await tiny({"/api/v1/models/1": html})
    async with make_client(base) as c:
        err = await expect(FailureKind.API, c.get_model(1))
    assert "expected JSON" in err.message and "CIVITAI_BASE_URL" in err.message


async def test_token_stays_on_the_api_origin_across_redirects(
    tiny: Callable[..., Awaitable[str]],
) -> None:
    seen: list[str | None] = []

    async def other(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"id": 1, "name": "moved"})

    other_base = await tiny({"/m/1": other})

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(other_base + "/m/1")

    base = await tiny({"/api/v1/models/1": moved})
    async with make_client(base) as c:
        assert (await c.get_model(1)).name == "moved"
    assert seen == [None]


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "ftp://example.org/x", "file:///etc/passwd"],
)
async def test_unsafe_download_redirect_is_refused(
    tiny: Callable[..., Awaitable[str]], location: str
) -> None:
    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(location)

    base = await tiny({"/api/download/models/5": redirect})
    async with make_client(base) as c:
        await expect(FailureKind.INSECURE_URL, c.resolve_download(5))


async def test_network_error() -> None:
    with socket.socket() as probe:  # learn a free port, then release it: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with make_client(f"http://127.0.0.1:{port}") as c:
        err = await expect(FailureKind.NETWORK, c.get_model(1))
    assert "cannot reach" in err.message and err.retryable


def test_plain_http_base_url_needs_allow_http() -> None:
    with pytest.raises(CivitaiTuiError) as info:
        CivitAIClient("http://civitai.example.org")
    assert info.value.kind is FailureKind.INSECURE_URL
    assert CivitAIClient("http://civitai.example.org", allow_http=True).base_url.startswith("http:")


async def test_token_only_as_bearer_header_on_the_api_origin(
    tiny: Callable[..., Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[tuple[str | None, str]] = []

    async def download(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Authorization"), request.query_string))
        raise web.HTTPTemporaryRedirect("http://127.0.0.1:9/files/5/a.bin?expires=1&sig=abc")

    base = await tiny({"/api/download/models/5": download})
    async with make_client(base) as c:
        resolved = await c.resolve_download(5, 6)
        with pytest.raises(CivitaiTuiError):
            await c.get_model(1)  # 404 from the tiny server: an error path, logged
    assert seen == [(f"Bearer {TOKEN}", "fileId=6")]
    assert resolved.filename == "a.bin" and resolved.expires_at == 1.0
    assert "/api/download/models/5" in caplog.text  # the requests were logged, masked
    assert TOKEN not in caplog.text and "sig=abc" not in caplog.text


Origin = Callable[[dict[str, Handler]], Awaitable[CivitAIClient]]


@pytest.fixture
async def origin(tiny: Callable[[dict[str, Handler]], Awaitable[str]]) -> AsyncIterator[Origin]:
    """A loopback API origin from ``{path: handler}`` and a client pointed at it."""
    clients: list[CivitAIClient] = []

    async def start(routes: dict[str, Handler]) -> CivitAIClient:
        client = make_client(await tiny(routes), backoff=Backoff(attempts=2, base=0.01, cap=0.02))
        clients.append(await client.__aenter__())
        return client

    yield start
    for client in clients:
        await client.close()


def answer(status: int, body: Any = None, **kw: Any) -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        if isinstance(body, str):
            return web.Response(status=status, text=body, **kw)
        return web.json_response(body, status=status, **kw)

    return handler


async def failure(call: Awaitable[object]) -> CivitaiTuiError:
    with pytest.raises(CivitaiTuiError) as err:
        await call
    return err.value


@pytest.mark.parametrize(
    ("status", "body", "kw", "kind", "words"),
    [
        (500, "database on fire", {"content_type": "text/plain"}, FailureKind.SERVER, "fire"),
        (502, "<html>bad gateway</html>", {"content_type": "text/html"}, FailureKind.SERVER, ""),
        (418, {"error": "teapot"}, {}, FailureKind.API, "unexpected answer"),
        (403, {"message": "banned"}, {}, FailureKind.FORBIDDEN, "not accessible"),
        (410, None, {}, FailureKind.GONE, "archived or taken down"),
    ],
)
async def test_error_statuses_map_to_kinds_with_the_servers_words(
    origin: Origin, status: int, body: Any, kw: dict[str, Any], kind: FailureKind, words: str
) -> None:
    client = await origin({"/api/v1/models/7": answer(status, body, **kw)})
    err = await failure(client.get_model(7))
    assert (err.kind, err.status) == (kind, status)
    assert "model 7" in err.message and words in err.message
    if "html" in str(body):
        assert f"HTTP {status}" in err.message and "<html>" not in err.message


async def test_a_redirect_loop_stops_with_a_clear_error(origin: Origin) -> None:
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/api/v1/models/1")

    client = await origin({"/api/v1/models/1": loop})
    err = await failure(client.get_model(1))
    assert err.kind is FailureKind.API and "too many redirects" in err.message


async def test_a_challenge_page_with_status_200_is_named(origin: Origin) -> None:
    page = answer(200, "<html>Just a moment...</html>", content_type="text/html")
    client = await origin({"/api/v1/model-versions/3": page, "/api/download/models/3": page})
    for call in (client.get_version(3), client.resolve_download(3)):
        err = await failure(call)
        assert err.kind is FailureKind.CHALLENGE and "bot-check" in err.message


async def test_unreadable_data_and_wrong_shapes_are_api_errors(origin: Origin) -> None:
    client = await origin(
        {
            "/api/v1/models/5": answer(200, {"id": "five", "versions": "nope"}),
            "/api/v1/model-versions/by-hash": answer(200, {"items": []}),
            "/api/v1/models": answer(200, {"metadata": {}}),
        }
    )
    assert "cannot read" in (await failure(client.get_model(5))).message
    err = await failure(client.versions_by_hashes(["AB" * 32]))
    assert (err.kind, err.message) == (
        FailureKind.API,
        "the hash lookup (1 hashes): expected a JSON array",
    )
    err = await failure(anext(client.iter_models(tag="x")))
    assert "no 'items' list" in err.message


async def test_a_repeated_cursor_stops_the_listing(origin: Origin) -> None:
    async def page(request: web.Request) -> web.Response:
        assert request.query.get("query") == "cats" and request.query.get("sort") == "Newest"
        return web.json_response({"items": [], "metadata": {"nextCursor": "c1"}} | _one())

    client = await origin({"/api/v1/models": page})
    seen: list[int] = []

    async def walk() -> None:
        async for model in client.iter_models(query="cats", sort="Newest", nsfw=False):
            seen.append(model.id)

    err = await failure(walk())
    assert seen == [1, 1]  # the first page, then the page after cursor c1 ...
    assert "page after cursor c1" in err.message and "same cursor twice" in err.message


def _one() -> dict[str, Any]:
    return {"items": [{"id": 1, "name": "m", "type": "LORA", "modelVersions": []}]}


async def test_no_models_asked_none_fetched(origin: Origin) -> None:
    async def never(_: web.Request) -> web.Response:
        raise AssertionError("no request expected for limit=0")

    client = await origin({"/api/v1/models": never})
    assert [m async for m in client.iter_models(limit=0)] == []


async def test_hash_with_symbols_is_a_bad_target_without_a_request(origin: Origin) -> None:
    client = await origin({})
    err = await failure(client.get_version_by_hash("../../etc"))
    assert err.kind is FailureKind.BAD_TARGET and "not a hex hash" in err.message


async def test_download_that_does_not_redirect_says_what_came_instead(origin: Origin) -> None:
    client = await origin(
        {
            "/api/download/models/9": answer(200, {"ok": True}),
            "/api/download/models/10": answer(302, headers={"Location": "/model-versions/10"}),
        }
    )
    err = await failure(client.resolve_download(9, 4))
    assert err.kind is FailureKind.API
    assert "file 4" in err.message and "expected a redirect" in err.message
    assert "application/json" in err.message
    err = await failure(client.resolve_download(10))
    assert err.kind is FailureKind.EARLY_ACCESS and "version page" in err.message


async def test_the_client_must_be_opened_first() -> None:
    client = CivitAIClient("http://127.0.0.1:9", TOKEN)
    with pytest.raises(RuntimeError, match="async with"):
        await client.get_model(1)
