"""A job added without a name takes its model's name once planned (not ``model:5575``)."""

from __future__ import annotations

from pathlib import Path

from civitai_tui.simulator.server import Simulator
from tests.conftest import embedded_engine


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
