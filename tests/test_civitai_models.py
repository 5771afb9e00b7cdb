"""Parsing real-shaped API JSON into models, and choosing files of a version."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from civitai_tui.civitai.models import Model, ModelFile, ModelVersion
from civitai_tui.civitai.selection import FileSelection, select_files

SHA_WAI = "A5F58EB1C33616C4F06BCA55AF39876A7B817913CD829CAA8ACB111B770C85CC"

LISTING_ITEM: dict[str, Any] = {
    "id": 827184,
    "name": "WAI-illustrious-SDXL",
    "description": "<p>...</p>",
    "type": "Checkpoint",
    "nsfw": False,
    "nsfwLevel": 31,
    "stats": {"downloadCount": 1272529, "thumbsUpCount": 79272},
    "creator": {"username": "WAI0731", "image": "https://image.civitai.com/x/WAI0731.jpeg"},
    "tags": ["base model", "anime"],
    "modelVersions": [
        {
            "id": 2514310,
            "name": "v16.0",
            "baseModel": "Illustrious",
            "publishedAt": "2025-12-18T09:16:12.062Z",
            "trainedWords": [],
            "files": [
                {
                    "id": 2402203,
                    "name": "waiIllustriousSDXL_v160.safetensors",
                    "type": "Model",
                    "sizeKB": 6775430.35,
                    "primary": True,
                    "metadata": {"format": "SafeTensor", "size": "pruned", "fp": "fp16"},
                    "pickleScanResult": "Success",
                    "virusScanResult": "Success",
                    "hashes": {
                        "AutoV2": "A5F58EB1C3",
                        "SHA256": SHA_WAI,
                    },
                    "downloadUrl": "https://civitai.com/api/download/models/2514310",
                }
            ],
            "images": [],
            "downloadUrl": "https://civitai.com/api/download/models/2514310",
        },
        {"id": 2000000, "name": "v15.0", "baseModel": "Illustrious", "files": []},
    ],
}

VERSION: dict[str, Any] = {
    "id": 1050496,
    "modelId": 706978,
    "name": "V.3",
    "publishedAt": "2024-11-11T11:49:42.064Z",
    "trainedWords": ["aesthetic_pos3", "dynamic_pos3"],
    "baseModel": "Flux.1 D",
    "baseModelType": None,
    "earlyAccessEndsAt": None,
    "model": {"name": "Realistic/Aesthetic Poses FluxDev", "type": "LORA", "nsfw": False},
    "files": [
        {
            "id": 956231,
            "sizeKB": 167938.8828125,
            "name": "aeshteticv5.safetensors",
            "type": "Model",
            "pickleScanResult": "Success",
            "virusScanResult": "Success",
            "metadata": {"format": "SafeTensor", "size": None, "fp": None},
            "hashes": {
                "AutoV1": "88828AE7",
                "SHA256": "21437EC26670E230B067CA936F6657CAF5CA063F15AEC333EF249BEC7C0F0DC0",
                "BLAKE3": "AAA6F513C4BFA00031941F3A427046D31A12B161CBE2CE75AAB260C74D13C0FC",
            },
            "primary": True,
            "downloadUrl": "https://civitai.com/api/download/models/1050496",
        }
    ],
    "images": [{"url": "https://image.civitai.com/x/39539160.jpeg", "nsfwLevel": 2}],
    "downloadUrl": "https://civitai.com/api/download/models/1050496",
}


def test_version_from_real_by_hash_response() -> None:
    version = ModelVersion.from_json(VERSION)
    assert (version.id, version.model_id, version.name) == (1050496, 706978, "V.3")
    assert (version.model_name, version.model_type) == ("Realistic/Aesthetic Poses FluxDev", "LORA")
    assert version.base_model == "Flux.1 D" and version.early_access_ends_at is None
    assert version.trained_words == ("aesthetic_pos3", "dynamic_pos3")
    assert version.images[0]["nsfwLevel"] == 2
    file = version.primary_file()
    assert file is not None
    assert file.size == 171_969_416  # the reference's worked example
    assert file.format == "SafeTensor" and file.fp is None and file.size_variant is None
    assert file.hash("sha256") == VERSION["files"][0]["hashes"]["SHA256"]
    assert file.hash("blake3") is not None and file.hash("crc32") is None
    assert file.has_hash("88828ae7") and not file.has_hash("00000000")
    assert (file.pickle_scan_result, file.virus_scan_result) == ("Success", "Success")


def test_model_from_listing_item_fills_version_model_fields() -> None:
    model = Model.from_json(LISTING_ITEM)
    assert (model.id, model.type, model.creator.username) == (827184, "Checkpoint", "WAI0731")
    assert model.tags == ("base model", "anime") and model.stats["downloadCount"] == 1272529
    assert [v.id for v in model.versions] == [2514310, 2000000]
    latest = model.versions[0]
    assert (latest.model_id, latest.model_name, latest.model_type) == (
        827184,
        "WAI-illustrious-SDXL",
        "Checkpoint",
    )
    assert latest.files[0].size == round(6775430.35 * 1024)
    assert latest.files[0].size_variant == "pruned" and latest.files[0].fp == "fp16"
    assert model.versions[1].files == ()


def test_tolerates_missing_and_null_fields() -> None:
    model = Model.from_json(
        {"id": 5, "name": None, "mode": "Archived", "creator": None, "modelVersions": [{"id": 6}]}
    )
    assert model.name == "" and model.creator.username == "" and model.mode == "Archived"
    assert model.versions[0].model_mode == "Archived"
    fresh = ModelFile.from_json({"id": 9, "name": "x.pt", "hashes": {}, "primary": None})
    assert fresh.size is None and fresh.hashes == {} and fresh.primary is False
    assert fresh.pickle_scan_result is None


def test_missing_id_is_an_error() -> None:
    broken = copy.deepcopy(VERSION)
    del broken["files"][0]["id"]
    with pytest.raises(ValueError, match="file without an integer id"):
        ModelVersion.from_json(broken)


def _file(fid: int, **kw: Any) -> dict[str, Any]:
    meta = {k: kw.pop(k) for k in ("format", "fp", "size") if k in kw}
    return {"id": fid, "name": f"f{fid}", "sizeKB": 1.0, "metadata": meta, **kw}


MULTI = ModelVersion.from_json(
    {
        "id": 1,
        "files": [
            _file(10, type="Config"),
            _file(11, type="Model", primary=True, format="SafeTensor", fp="fp32", size="full"),
            _file(12, type="Model", format="SafeTensor", fp="fp16", size="pruned"),
            _file(13, type="Model", format="PickleTensor", fp="fp16", size="pruned"),
            _file(14, type="VAE", format="SafeTensor"),
        ],
    }
)


@pytest.mark.parametrize(
    ("selection", "ids"),
    [
        (FileSelection(), [11]),
        (FileSelection(fp="FP16"), [12]),
        (FileSelection(fp="fp16", formats=("PickleTensor",)), [13]),
        (FileSelection(size="pruned", primary_only=False), [12, 13]),
        (FileSelection(include_types=("VAE",)), [14]),
        (FileSelection(primary_only=False), [10, 11, 12, 13, 14]),
        (FileSelection(fp="int4"), []),
    ],
)
def test_select_files(selection: FileSelection, ids: list[int]) -> None:
    assert [f.id for f in select_files(MULTI, selection)] == ids


def test_select_falls_back_to_first_model_file_then_first_file() -> None:
    no_primary = ModelVersion.from_json(
        {"id": 2, "files": [_file(20, type="Config"), _file(21, type="Model")]}
    )
    assert [f.id for f in select_files(no_primary, FileSelection())] == [21]
    only_other = ModelVersion.from_json({"id": 3, "files": [_file(30, type="Archive")]})
    assert [f.id for f in select_files(only_other, FileSelection())] == [30]
