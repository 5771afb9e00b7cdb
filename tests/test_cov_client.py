"""CivitAI API client: every odd answer becomes a clear error of the right kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.civitai.politeness import Backoff, RateLimiter
from civitai_tui.errors import CivitaiTuiError, FailureKind
from tests.conftest import TOKEN

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Origin = Callable[[dict[str, Handler]], Awaitable[CivitAIClient]]


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    """A loopback API origin from ``{path: handler}`` and a client pointed at it."""
    runners: list[web.AppRunner] = []
    clients: list[CivitAIClient] = []

    async def start(routes: dict[str, Handler]) -> CivitAIClient:
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_route("*", path, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        client = CivitAIClient(
            f"http://127.0.0.1:{runner.addresses[0][1]}",
            TOKEN,
            backoff=Backoff(attempts=2, base=0.01, cap=0.02),
            limiter=RateLimiter(rate=1000, burst=100),
        )
        clients.append(await client.__aenter__())
        return client

    yield start
    for client in clients:
        await client.close()
    for runner in runners:
        await runner.cleanup()


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
