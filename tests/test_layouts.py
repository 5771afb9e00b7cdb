"""Library layouts and name sanitising, including hostile names from the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from civitai_tui.civitai.layouts import LibraryLayout
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import FileInfo


def info(key: str = "civitai:1", **kw: object) -> FileInfo:
    base = {
        "name": "x.safetensors",
        "model_type": "LORA",
        "base_model": "SDXL 1.0",
        "model_name": "Cute Style",
        "version_name": "v2",
        "creator": "alice",
        "model_id": 10,
        "version_id": 20,
        "file_id": 1,
    }
    base.update(kw)
    return FileInfo(key=key, **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("layout", "model_type", "expected"),
    [
        ("flat", "LORA", "x.safetensors"),
        ("comfyui", "LORA", "loras/x.safetensors"),
        ("comfyui", "Checkpoint", "checkpoints/x.safetensors"),
        ("comfyui", "TextualInversion", "embeddings/x.safetensors"),
        ("comfyui", "Workflows", "other/x.safetensors"),
        ("a1111", "Checkpoint", "models/Stable-diffusion/x.safetensors"),
        ("a1111", "LoCon", "models/Lora/x.safetensors"),
        ("a1111", "TextualInversion", "embeddings/x.safetensors"),
        ("a1111", "Upscaler", "models/ESRGAN/x.safetensors"),
    ],
)
def test_builtin_layouts(tmp_path: Path, layout: str, model_type: str, expected: str) -> None:
    lib = LibraryLayout(tmp_path, layout)
    assert lib.place(info(model_type=model_type), "x.safetensors") == tmp_path / expected


def test_template_fields_and_sanitising(tmp_path: Path) -> None:
    lib = LibraryLayout(
        tmp_path, "template", "{type}/{base_model}/{creator}-{model_name}/{file_name}"
    )
    path = lib.place(info(model_name="../../etc", creator="a/b"), "CON.safetensors")
    rel = path.relative_to(tmp_path)
    assert rel.parts[:2] == ("LORA", "SDXL 1.0")
    assert ".." not in rel.parts and "/" not in rel.parts[2]
    assert rel.name == "_CON.safetensors"


@pytest.mark.parametrize(
    "hostile",
    ["../../../etc/passwd", "..", "a\x00b\x1f.ckpt", "/abs/path.pt", "C:\\win\\x.pt", "é" * 300],
)
def test_hostile_names_stay_inside_the_root(tmp_path: Path, hostile: str) -> None:
    for layout in ("flat", "comfyui", "a1111", "template"):
        lib = LibraryLayout(tmp_path, layout)
        path = lib.place(info(model_name=hostile, base_model=hostile), hostile)
        assert path.resolve().is_relative_to(tmp_path.resolve())
        assert all(len(p.encode()) <= 200 for p in path.relative_to(tmp_path).parts)
        assert "\x00" not in str(path)


def test_collisions_get_the_file_id(tmp_path: Path) -> None:
    lib = LibraryLayout(tmp_path, "flat")
    a = lib.place(info("civitai:1", file_id=1), "model.safetensors")
    again = lib.place(info("civitai:1", file_id=1), "model.safetensors")
    b = lib.place(info("civitai:2", file_id=2), "model.safetensors")
    assert a == again == tmp_path / "model.safetensors"
    assert b == tmp_path / "model (2).safetensors"


@pytest.mark.parametrize(
    ("layout", "template", "words"),
    [
        ("nested", "", "unknown layout 'nested'"),
        ("template", "{type}/{oops}/{file_name}", "unknown field(s) oops"),
        ("template", "{type}/{model_name}", "must end in {file_name}"),
        ("template", "{file_name}/{type}", "must end in {file_name}"),
        ("template", "{type", "bad layout template"),
    ],
)
def test_bad_layouts_are_refused(tmp_path: Path, layout: str, template: str, words: str) -> None:
    with pytest.raises(CivitaiTuiError) as err:
        LibraryLayout(tmp_path, layout, template)
    assert words in str(err.value) and err.value.kind is FailureKind.BAD_CONFIG
