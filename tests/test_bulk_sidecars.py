"""Sidecars: the metadata JSON and the preview image, against the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from civitai_tui.bulk.sidecars import fetch_preview, sidecar_path, write_sidecar
from civitai_tui.civitai.models import ModelVersion
from civitai_tui.civitai.planner import preview_image
from civitai_tui.events import FileInfo
from civitai_tui.simulator.server import Simulator


def test_sidecar_says_where_the_file_came_from(tmp_path: Path) -> None:
    model = tmp_path / "cute.safetensors"
    model.write_bytes(b"x" * 10)
    info = FileInfo(
        key="civitai:3",
        name=model.name,
        model_id=1,
        version_id=2,
        file_id=3,
        model_name="Cute",
        version_name="v1",
        model_type="LORA",
        base_model="SDXL 1.0",
        creator="alice",
    )
    path = write_sidecar(model, info, "AB" * 32, "https://civitai.com/")
    assert path == sidecar_path(model) == tmp_path / "cute.safetensors.civitai.json"
    data = json.loads(path.read_text())
    assert data["source"] == "https://civitai.com/models/1?modelVersionId=2"
    assert (data["modelId"], data["modelVersionId"], data["fileId"]) == (1, 2, 3)
    assert data["file"] == {"name": model.name, "sizeBytes": 10, "sha256": "AB" * 32}
    assert data["version"]["baseModel"] == "SDXL 1.0" and data["creator"] == "alice"


def test_preview_choice_respects_the_nsfw_level() -> None:
    version = ModelVersion.from_json(
        {
            "id": 5,
            "name": "v",
            "images": [
                {"url": "https://img/x.png", "nsfwLevel": 8},
                {"url": "https://img/ok.png", "nsfwLevel": 1},
            ],
        }
    )
    assert preview_image(version, 1) == "https://img/ok.png"
    assert preview_image(version, 8) == "https://img/x.png"
    assert preview_image(ModelVersion.from_json({"id": 6, "name": "v"}), 31) is None


async def test_preview_is_fetched_and_bad_ones_skipped(sim: Simulator, tmp_path: Path) -> None:
    version = next(v for m in sim.catalogue.models for v in m.versions if v.images)
    url = f"{sim.storage_url}/images/{version.images[0].id}.png"
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"m")
    async with aiohttp.ClientSession() as session:
        path = await fetch_preview(session, url, model)
        assert path == tmp_path / "m.preview.png"
        assert path.read_bytes().startswith(b"\x89PNG")
        missing = await fetch_preview(session, f"{sim.storage_url}/images/999999.png", model)
        refused = await fetch_preview(session, "http://example.com/x.png", model)
    assert missing is None and refused is None  # 404, and plain http to a public host
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.preview.png", "m.safetensors"]
