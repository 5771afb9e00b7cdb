"""Control API edges: malformed bodies, queue-wide actions, the TCP token, client errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from civitai_tui.bulk.manager import BulkDownloadManager, ManagerSettings
from civitai_tui.engine.client import EngineClient
from civitai_tui.engine.core import Engine
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.simulator.server import Simulator
from tests.conftest import embedded_engine
from tests.test_civitai_client import small_plain_model


class Live:
    """An engine (analytics off) serving its control API on a Unix socket."""

    def __init__(self, engine: Engine, client: EngineClient, socket_path: Path) -> None:
        self.engine, self.client, self.socket = engine, client, socket_path

    async def raw(self, method: str, path: str, body: str | bytes | None) -> tuple[int, Any]:
        connector = aiohttp.UnixConnector(path=str(self.socket))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(
                method,
                "http://engine" + path,
                data=body,
                headers={"Content-Type": "application/json"},
            ) as resp,
        ):
            return resp.status, await resp.json()


@pytest.fixture
async def live(sim: Simulator, tmp_path: Path) -> AsyncIterator[Live]:
    config = "[bulk]\nstrategy = 'sequential'\nbatch_size = 2\n[analytics]\nenabled = false\n"
    async with embedded_engine(sim, tmp_path / "state", config) as (engine, client, socket):
        yield Live(engine, client, socket)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("POST", "/v1/preview", '{"targets": "model:1"}', 400, "non-empty list"),
        ("POST", "/v1/jobs", '{"targets": ["model:1"], "options": []}', 400, "must be an object"),
        ("POST", "/v1/jobs", '{"targets": ["tag:x"], "options": {"limit": {}}}', 400, "'limit'"),
        ("POST", "/v1/jobs", '{"targets": ["tag:x"], "options": {"types": "LORA"}}', 400, "list"),
        ("POST", "/v1/jobs", b'{"targets": ["\xff"]}', 400, "not valid JSON"),
        ("POST", "/v1/jobs/x/explode", None, 404, "unknown action 'explode'"),
        ("POST", "/v1/jobs/x/priority", "{}", 400, "'priority' is required"),
        ("POST", "/v1/jobs/x/priority", '{"priority": true}', 400, "integer"),
        ("POST", "/v1/wait", '{"jobs": "all"}', 400, "list of job ids"),
        ("POST", "/v1/wait", '{"jobs": ["nope"]}', 404, "no job with id 'nope'"),
        ("GET", "/v1/analytics?days=0", None, 400, "from 1 to 3650"),
        ("GET", "/v1/analytics?days=x", None, 400, "whole number"),
        ("POST", "/v1/reports", '{"format": "html"}', 400, "'output' (a file path)"),
        ("POST", "/v1/reports", '{"output": "/tmp/r.html", "days": -1}', 400, "whole number"),
        ("PUT", "/v1/config/bulk.batch_size", "{}", 400, "'value' is required"),
        ("PUT", "/v1/performance/mode", "{}", 400, "speed, efficiency, minimal or adaptive"),
        ("PUT", "/v1/performance/mode", '{"mode": "warp"}', 400, "warp"),
        ("GET", "/v1/nowhere", None, 404, "Not Found"),
    ],
)
async def test_bad_requests_get_a_clear_4xx_and_the_engine_lives_on(
    live: Live, method: str, path: str, body: str | None, status: int, words: str
) -> None:
    got, data = await live.raw(method, path, body)
    assert got == status, data
    assert words in data["message"], data
    assert (await live.client.status())["jobs"] == {}


async def test_options_must_be_known_and_well_typed_for_preview(live: Live) -> None:
    got, data = await live.raw("POST", "/v1/preview", '{"targets": ["model:1"], "options": 3}')
    assert (got, data["error"]) == (400, "bad_target")


async def test_queue_wide_pause_resume_and_remove_finished(
    live: Live, sim: Simulator, tmp_path: Path
) -> None:
    await live.client.set_config("bulk.concurrent_batches", 1)
    await live.client.set_config("bulk.sidecars", False)
    model = small_plain_model(sim)
    done = await live.client.add([f"model:{model.id}"], options={"dest": str(tmp_path / "m")})
    assert (await live.client.wait([done["id"]], timeout=30))["ok"]
    # Park two jobs that really download (elsewhere, the library copy not reused, slowly):
    # pause-all catches them whether they are waiting or running.
    await live.client.set_config("bulk.dedupe", "download")
    primary = model.versions[0].primary_file()
    assert primary is not None
    sim.faults.set(primary.id, per_connection_rate=max(primary.size // 4, 1))
    a = await live.client.add(
        [f"model:{model.id}"], name="a", options={"dest": str(tmp_path / "a")}
    )
    b = await live.client.add(
        [f"model:{model.id}"], name="b", options={"dest": str(tmp_path / "b")}
    )
    changed = (await live.client.queue_action("pause-all"))["changed"]
    assert set(changed) <= {a["id"], b["id"]} and a["id"] in changed
    assert {(await live.client.job(j))["state"] for j in changed} == {"PAUSED"}
    again = await live.client.action(a["id"], "pause")  # pausing twice is harmless
    assert again["state"] == "PAUSED"
    untouched = await live.client.action(done["id"], "resume")  # not paused: unchanged
    assert untouched["state"] == "COMPLETED"
    sim.faults.reset()
    resumed = (await live.client.queue_action("resume-all"))["changed"]
    assert sorted(resumed) == sorted(changed)
    assert (await live.client.wait(None, timeout=30)) == {"finished": True, "ok": True}
    for folder in ("m", "a", "b"):
        assert [p.suffix for p in (tmp_path / folder).iterdir()] == [".safetensors"]  # no sidecar
    removed = (await live.client.queue_action("remove-finished"))["removed"]
    assert sorted(removed) == sorted([done["id"], a["id"], b["id"]])
    assert await live.client.jobs() == []
    with pytest.raises(CivitaiTuiError) as err:
        await live.client.job(a["id"])
    assert err.value.kind is FailureKind.UNKNOWN_JOB


async def test_wait_with_a_timeout_reports_not_finished(
    live: Live, sim: Simulator, tmp_path: Path
) -> None:
    huge = sim.catalogue.specials.huge
    sim.faults.set(huge.file_id, per_connection_rate=200_000)
    job = await live.client.add([f"model:{huge.model_id}"], options={"dest": str(tmp_path)})
    assert await live.client.wait([job["id"]], timeout=0.2) == {"finished": False, "ok": False}
    assert (await live.client.action(job["id"], "cancel"))["state"] == "CANCELLED"


async def test_a_job_whose_targets_all_fail_says_why_and_can_be_retried(
    live: Live, sim: Simulator, tmp_path: Path
) -> None:
    missing = max(m.id for m in sim.catalogue.models) + 1000
    job = await live.client.add([f"model:{missing}"], options={"dest": str(tmp_path)})
    assert (await live.client.wait([job["id"]], timeout=20))["ok"] is False
    failed = await live.client.job(job["id"])
    assert failed["state"] == "FAILED" and failed["files"] == []
    assert str(missing) in failed["error"] and "not found" in failed["error"].lower()
    again = await live.client.action(job["id"], "retry")
    assert again["state"] == "PENDING"
    assert (await live.client.wait([job["id"]], timeout=20))["ok"] is False
    assert (await live.client.job(job["id"]))["state"] == "FAILED"  # expanded afresh


@pytest.fixture
async def files_origin(tmp_path: Path) -> AsyncIterator[str]:
    """A plain file server on loopback (Range support from aiohttp's FileResponse)."""
    root = tmp_path / "origin"
    root.mkdir()
    (root / "good.gguf").write_bytes(b"GGUF" + bytes(range(256)) * 256)
    (root / "bad.gguf").write_bytes(b"JUNK" + bytes(range(256)) * 64)
    app = web.Application()
    app.router.add_static("/m", root)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/m"
    finally:
        await runner.cleanup()


async def test_url_job_lands_good_files_and_says_why_the_others_failed(
    live: Live, files_origin: str, tmp_path: Path
) -> None:
    dest = tmp_path / "models"
    await live.client.set_config("bulk.pause_between_batches", 0.01)
    urls = [f"{files_origin}/good.gguf", f"{files_origin}/bad.gguf", f"{files_origin}/gone.gguf"]
    job = await live.client.add(urls, options={"dest": str(dest)})
    assert (await live.client.wait([job["id"]], timeout=30))["ok"] is False
    detail = await live.client.job(job["id"])
    files = {f["name"]: f for f in detail["files"]}
    assert detail["state"] == "FAILED" and detail["files_done"] == 1
    good = Path(files["good.gguf"]["path"])
    assert good.read_bytes()[:4] == b"GGUF" and good.parent == dest
    assert files["bad.gguf"]["error_kind"] == "invalid_format"
    assert "GGUF" in files["bad.gguf"]["error"]
    assert files["gone.gguf"]["last_status"] == 404
    assert "HTTP 404" in detail["error"] and "invalid_format" in detail["error"]
    landed = sorted(p.name for p in dest.iterdir() if p.is_file())
    assert landed == ["good.gguf", "good.gguf.civitai.json"]  # nothing half-written or refused

    # Retry starts the failed files over and keeps the finished one; cancel keeps it too.
    assert (await live.client.action(job["id"], "retry"))["files_done"] == 1
    assert (await live.client.action(job["id"], "cancel"))["state"] == "CANCELLED"
    states = {f["name"]: f["state"] for f in (await live.client.job(job["id"]))["files"]}
    assert states["good.gguf"] == "completed" and good.exists()
    assert {states["bad.gguf"], states["gone.gguf"]} <= {"cancelled", "failed"}


async def test_analytics_off_still_answers_with_an_empty_report(live: Live) -> None:
    assert live.engine.analytics is None
    report = await live.client.analytics(3)
    assert report["totals"]["completed"] == 0


async def test_ui_settings_change_without_touching_the_downloads(live: Live) -> None:
    before = live.engine.manager.settings.download.connections
    assert (await live.client.set_config("ui.theme", "civitai-light"))["value"] == "civitai-light"
    assert live.engine.manager.settings.download.connections == before
    assert (await live.client.config())["ui.theme"] == "civitai-light"


async def test_event_stream_ends_when_the_client_closes(live: Live) -> None:
    connector = aiohttp.UnixConnector(path=str(live.socket))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.ws_connect("http://engine/v1/events") as ws,
    ):
        first = await ws.receive_json(timeout=5)
        assert first["type"] == "snapshot"
        await ws.close()
    deadline = asyncio.get_running_loop().time() + 5
    while live.engine.bus._subscriptions:  # the stream's subscription must be released
        assert asyncio.get_running_loop().time() < deadline, "subscription kept after close"
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_client_without_an_engine_says_how_to_start_one(tmp_path: Path) -> None:
    async with EngineClient(tmp_path / "missing.sock") as client:
        for call in (client.status(), anext(client.events())):
            with pytest.raises(CivitaiTuiError) as err:
                await call
            assert err.value.kind is FailureKind.ENGINE
            assert "civitai-tui engine" in err.value.message


@pytest.fixture
async def impostor(tmp_path: Path) -> AsyncIterator[Path]:
    """Something else answering on the engine's socket path."""

    async def garbage(request: web.Request) -> web.Response:
        if request.path == "/v1/status":
            return web.Response(text="<html>hello</html>")
        if request.path == "/v1/jobs":
            return web.json_response({"error": "from_mars", "message": ""}, status=418)
        return web.json_response(["not", "an", "object"], status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    path = tmp_path / "impostor.sock"
    await web.UnixSite(runner, str(path)).start()
    try:
        yield path
    finally:
        await runner.cleanup()


async def test_client_names_malformed_and_unknown_answers(impostor: Path) -> None:
    async with EngineClient(impostor) as client:
        with pytest.raises(CivitaiTuiError) as err:
            await client.status()
        assert (err.value.kind, err.value.message) == (
            FailureKind.ENGINE,
            "the engine sent a malformed answer",
        )
        with pytest.raises(CivitaiTuiError) as err:
            await client.jobs()
        assert err.value.kind is FailureKind.ENGINE
        assert err.value.message == "engine answered HTTP 418"
        with pytest.raises(CivitaiTuiError) as err:
            await client.config()
        assert err.value.kind is FailureKind.ENGINE and "['not', 'an', 'object']" in str(err.value)


async def test_a_manager_stopped_before_it_started_closes_cleanly(
    sim: Simulator, tmp_path: Path
) -> None:
    manager = BulkDownloadManager(ManagerSettings(state_dir=tmp_path, base_url=sim.api_url))
    await manager.stop()
    again = BulkDownloadManager(ManagerSettings(state_dir=tmp_path, base_url=sim.api_url))
    await again.start()
    try:
        assert again.jobs() == [] and again.downloader is not None
    finally:
        await again.stop()
