"""``get`` and the queue follow one set of library rules: layout, sidecars, previews."""

from __future__ import annotations

from pathlib import Path

import pytest

from civitai_tui.simulator.server import Simulator
from tests.helpers import embedded_engine
from tests.test_cli_get import run_cli

pytestmark = pytest.mark.slow

LIBRARY = "[bulk]\nlayout = 'comfyui'\nsidecars = true\npreviews = true\npreview_nsfw_level = 31\n"


def lora_with_preview(sim: Simulator) -> int:
    return next(
        m.id
        for m in sim.catalogue.models
        if m.type == "LORA" and not m.mode and m.versions[0].images
    )


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_get_places_files_by_the_layout_with_sidecars_and_previews_like_the_queue(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = lora_with_preview(sim)
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(LIBRARY.replace("layout = 'comfyui'\n", ""))
    monkeypatch.setenv("CIVITAI_TUI_BULK__LAYOUT", "comfyui")  # as the issue ran it
    by_get = tmp_path / "by-get"
    code, _summary, err = await run_cli(home, sim, "get", f"model:{model}", "--dest", str(by_get))
    assert code == 0, err
    got = tree(by_get)
    assert next(p for p in got if p.endswith(".safetensors")).startswith("loras/")
    assert any(p.endswith(".civitai.json") for p in got), got
    assert any(".preview." in p for p in got), got

    by_queue = tmp_path / "by-queue"
    async with embedded_engine(sim, tmp_path / "engine-home", LIBRARY) as (_, client, _):
        job = await client.add([f"model:{model}"], options={"dest": str(by_queue)})
        assert (await client.wait([job["id"]], timeout=60))["ok"]
    assert tree(by_queue) == got  # the same files, at the same places


async def test_get_says_when_a_sidecar_could_not_be_written(sim: Simulator, tmp_path: Path) -> None:
    model = lora_with_preview(sim)
    primary = sim.catalogue.model(model).versions[0].primary_file()  # type: ignore[union-attr]
    assert primary is not None
    home, dest = tmp_path / "home", tmp_path / "dest"
    home.mkdir()
    (dest / (primary.name + ".civitai.json")).mkdir(parents=True)  # in the sidecar's way
    code, summary, err = await run_cli(
        home, sim, "get", f"model:{model}", "-d", str(dest), "--json"
    )
    assert code == 0, err  # the model is in place and verified: the sidecar is a warning
    assert isinstance(summary, dict)
    (f,) = summary["files"]
    assert f["status"] == "completed" and (dest / primary.name).is_file()
    assert f["warning"].startswith(primary.name + ".civitai.json not written")
