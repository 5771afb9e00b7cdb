"""What a job shows as it goes: its model's name once planned, its size once known."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from civitai_tui.events import FileInfo, FileProgress, FileStarted
from civitai_tui.simulator.server import Simulator
from civitai_tui.tui.state import EngineState
from tests.helpers import embedded_engine


async def test_a_default_name_becomes_the_model_name_a_given_one_stays(
    sim: Simulator, tmp_path: Path
) -> None:
    model = next(m for m in sim.catalogue.models if m.type == "LORA" and not m.mode)
    creator = sim.catalogue.models[0].creator
    async with embedded_engine(sim, tmp_path / "home", "") as (_engine, client, _):
        dest = {"dest": str(tmp_path / "m")}
        plain = await client.add([f"model:{model.id}"], options=dest)
        named = await client.add([f"model:{model.id}"], options=dest, name="my pick")
        bulk = await client.add([f"user:{creator}"], options={**dest, "limit": 1})
        assert plain["name"] == f"model:{model.id}"  # nothing known before planning
        assert (await client.wait(None, timeout=60))["finished"]
        names = {j["id"]: j["name"] for j in await client.jobs()}
    assert names[plain["id"]] == model.name
    assert names[named["id"]] == "my pick"
    assert names[bulk["id"]] == f"user:{creator}"


async def test_a_plain_url_job_shows_its_size_while_it_downloads(
    sim: Simulator, tmp_path: Path
) -> None:
    large = sim.catalogue.specials.large
    sim.faults.set(large.file_id, per_connection_rate=500_000, total_rate=500_000)
    config = "[bulk]\nbatch_size = 1\n"
    async with embedded_engine(sim, tmp_path / "home", config) as (_engine, client, _):
        url = sim.signed_url(large.file_id)
        job = await client.add([url], options={"dest": str(tmp_path / "m")})
        deadline = time.monotonic() + 30
        while True:  # the engine learns the size from the first response, mid-download
            summary = await client.job(job["id"])
            if summary["state"] == "PROCESSING" and summary["total_bytes"]:
                break
            assert time.monotonic() < deadline, summary
            await asyncio.sleep(0.05)
        size = sim.catalogue.file(large.file_id).size  # type: ignore[union-attr]
        assert summary["total_bytes"] == size and summary["done_bytes"] < size
        await client.action(job["id"], "cancel")


def test_the_ui_counts_a_size_first_known_from_progress() -> None:
    state = EngineState()
    state.apply_summaries([{"id": "j1", "name": "url", "state": "PROCESSING", "total_bytes": 0}])
    info = FileInfo(key="j1:f", name="x.bin", size=None, job_id="j1")
    state.apply_event(FileStarted(file=info))
    for done in (100, 200):
        state.apply_event(FileProgress(key="j1:f", done=done, total=1000, speed=10.0))
    job = state.jobs["j1"]
    assert (job.total_bytes, job.done_bytes) == (1000, 200)  # counted once, not per event
