"""Hostile data from the API and in model files: a clear per-request or per-file error, never a
crash; and the API models fuzzed from the simulator's real response shapes."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import example, given
from hypothesis import strategies as st

from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.civitai.models import Model, ModelFile, ModelVersion
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security.verify import Expectations, verify_file
from civitai_tui.simulator.generate import build_catalogue
from civitai_tui.simulator.render import Origins, model_json, version_json
from tests.loopback import serve_app
from tests.test_civitai_client import make_client

Serve = Callable[[str, bytes], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """A loopback API answering ``path`` with a fixed JSON ``body``; returns its origin."""
    runners: list[web.AppRunner] = []

    async def start(path: str, body: bytes) -> str:
        async def answer(_: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json")

        app = web.Application()
        app.router.add_get(path, answer)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize("size", ["1e999", "-1e999", "-5", "1.7e308", "true", '"12"', "1e400"])
async def test_a_size_no_file_can_have_is_unknown(serve: Serve, size: str) -> None:
    body = b'{"id": 7, "files": [{"id": 8, "name": "a.safetensors", "sizeKB": %s}]}' % (
        size.encode()
    )
    base = await serve("/api/v1/model-versions/7", body)
    async with make_client(base) as client:
        version = await client.get_version(7)
    assert version.files[0].size is None


async def test_json_nested_too_deeply_is_a_clear_api_error(serve: Serve) -> None:
    base = await serve("/api/v1/models/1", b"[" * 100_000 + b"]" * 100_000)
    async with make_client(base) as client:
        with pytest.raises(CivitaiTuiError) as info:
            await client.get_model(1)
    assert info.value.kind is FailureKind.API
    assert "nested too deeply" in info.value.message


def _safetensors(header: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header


async def test_a_safetensors_header_nested_too_deeply_is_an_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "m.part"
    data = _safetensors(b'{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    path.write_bytes(data)
    report = await verify_file(path, Expectations("deep.safetensors", len(data)))
    assert report.error is not None and report.error.kind is FailureKind.INVALID_FORMAT
    assert "nested too deeply" in report.error.message


# -- API models fuzzed from the real response shapes -----------------------------------

_CATALOGUE = build_catalogue(seed=3, regular_models=3)
_ORIGINS = Origins("https://civitai.example", "https://storage.example")
SHAPES: list[tuple[Callable[[Any], object], dict[str, Any]]] = [
    (Model.from_json, model_json(_ORIGINS, m)) for m in _CATALOGUE.models[:4]
] + [
    (ModelVersion.from_json, version_json(_ORIGINS, m, m.versions[0]))
    for m in _CATALOGUE.models[:4]
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)


def mutate(value: Any, draw: Callable[[st.SearchStrategy[Any]], Any]) -> Any:
    """``value`` with some of its parts replaced by any JSON, or dropped."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(json_values)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if draw(st.integers(0, 9)) == 0:
                continue  # the real API drops fields freely
            out[key] = mutate(item, draw)
        return out
    if isinstance(value, list):
        return [mutate(item, draw) for item in value[:3]]
    return value


@given(st.sampled_from(range(len(SHAPES))), st.data())
def test_any_mutation_of_a_real_answer_parses_or_is_an_api_error(
    index: int, data: st.DataObject
) -> None:
    parse, shape = SHAPES[index]
    answer = mutate(json.loads(json.dumps(shape)), data.draw)
    try:
        parsed = CivitAIClient._parse(parse, answer, "the fuzzed answer")
    except CivitaiTuiError as err:
        assert err.kind is FailureKind.API
        return
    versions = parsed.versions if isinstance(parsed, Model) else (parsed,)
    for version in versions:
        for file in version.files:
            assert isinstance(file.name, str)
            assert file.size is None or (isinstance(file.size, int) and file.size >= 0)


@given(json_values)
def test_any_json_as_a_file_entry_parses_or_is_a_value_error(value: Any) -> None:
    try:
        file = ModelFile.from_json(value if isinstance(value, dict) else {"id": 1, "x": value})
    except ValueError:
        return
    assert file.size is None or file.size >= 0


# -- one bad file never loses the others ------------------------------------------------

GOOD = _safetensors(b'{"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}') + b"abcd"
DEEP = _safetensors(b'{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}")


@pytest.fixture
async def files_origin() -> AsyncIterator[str]:
    async def answer(request: web.Request) -> web.Response:
        body = DEEP if request.match_info["name"].startswith("deep") else GOOD
        return web.Response(body=body, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/{name}", answer)
    async with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}"


def _requests(origin: str, dest: Path, names: list[str]) -> list[Any]:
    from civitai_tui.download.request import DirectSource, DownloadRequest
    from civitai_tui.events import FileInfo

    return [
        DownloadRequest(
            info=FileInfo(key=name, name=name, size=None, host="127.0.0.1"),
            source=DirectSource(f"{origin}/{name}"),
            dest_dir=dest,
            filename=name,
        )
        for name in names
    ]


async def _download_all(requests: list[Any]) -> list[Any]:
    from civitai_tui.download.settings import DownloadSettings
    from civitai_tui.events import EventBus
    from civitai_tui.oneshot import download_all

    return await download_all(requests, settings=DownloadSettings(), bus=EventBus(), max_files=2)


async def test_a_hostile_file_fails_alone(files_origin: str, tmp_path: Path) -> None:
    results = await _download_all(
        _requests(files_origin, tmp_path, ["deep.safetensors", "ok.safetensors"])
    )
    assert [r.status for r in results] == ["failed", "completed"]
    assert results[0].error.kind is FailureKind.INVALID_FORMAT
    assert (tmp_path / "ok.safetensors").read_bytes() == GOOD


async def test_an_unforeseen_exception_fails_that_file_only(
    files_origin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from civitai_tui.security import verify

    real = verify.check_safetensors

    def flaky(path: Path) -> None:
        if path.name.startswith("boom"):
            raise ZeroDivisionError("a bug nobody foresaw")
        real(path)

    monkeypatch.setattr(verify, "check_safetensors", flaky)
    results = await _download_all(
        _requests(files_origin, tmp_path, ["boom.safetensors", "ok.safetensors"])
    )
    assert [r.status for r in results] == ["failed", "completed"]
    assert results[0].error.kind is FailureKind.INTERNAL
    assert "ZeroDivisionError: a bug nobody foresaw" in results[0].error.message


# -- a server that echoes the token never gets it shown ---------------------------------

from civitai_tui.civitai.client import _ReadResponse  # noqa: E402 (the answer shape the client reads)
from tests.helpers import TOKEN  # noqa: E402

echoes = st.sampled_from(
    [TOKEN, f"Bearer {TOKEN}", f"token={TOKEN}", f"key: {TOKEN}", TOKEN.upper(), f"x{TOKEN}y"]
)


@given(
    st.sampled_from([400, 401, 403, 404, 410, 429, 500, 503]),
    st.text(max_size=20),
    echoes,
    st.sampled_from(["message", "error", "deadline"]),
)
@example(400, "", TOKEN.upper(), "message").via("found: the token echoed upper-cased")
def test_an_error_answer_echoing_the_token_never_shows_it(
    status: int, text: str, echo: str, field: str
) -> None:
    client = CivitAIClient("https://civitai.com", TOKEN)
    body = json.dumps({field: f"{text}{echo}{text}"}).encode()
    answer = _ReadResponse(
        status, {"Content-Type": "application/json"}, body, "https://civitai.com/x"
    )
    err = client._error(answer, "model 1")
    assert TOKEN not in err.message and TOKEN.upper() not in err.message.upper()
