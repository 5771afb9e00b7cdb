"""Folder layouts of a model library: where each downloaded file goes.

* ``flat``: everything in the destination folder.
* ``comfyui``: the destination is ComfyUI's ``models/`` folder; files go to
  ``checkpoints/``, ``loras/``, ``embeddings/``, ``vae/`` ... by model type.
* ``a1111``: the destination is the WebUI root (AUTOMATIC1111 / Forge);
  files go to ``models/Stable-diffusion``, ``models/Lora``, ``embeddings`` ...
* ``template``: a user template such as ``{type}/{base_model}/{model_name}/{file_name}``
  with the fields of :data:`TEMPLATE_FIELDS`.

Every path component is sanitised (no traversal, no reserved or control
characters, length-limited) and the result is checked to stay inside the
destination. Two different files that would land on the same path are told
apart by their CivitAI file id.
"""

from __future__ import annotations

import string
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from civitai_tui.civitai.filenames import safe_filename
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import FileInfo

COMFYUI_FOLDERS: dict[str, str] = {
    "checkpoint": "checkpoints",
    "lora": "loras",
    "locon": "loras",
    "dora": "loras",
    "textualinversion": "embeddings",
    "hypernetwork": "hypernetworks",
    "vae": "vae",
    "controlnet": "controlnet",
    "upscaler": "upscale_models",
    "unet": "diffusion_models",
    "textencoder": "text_encoders",
    "clip": "clip",
    "clipvision": "clip_vision",
    "motionmodule": "animatediff_models",
    "poses": "poses",
    "detection": "ultralytics",
}
A1111_FOLDERS: dict[str, str] = {
    "checkpoint": "models/Stable-diffusion",
    "lora": "models/Lora",
    "locon": "models/Lora",
    "dora": "models/Lora",
    "textualinversion": "embeddings",
    "hypernetwork": "models/hypernetworks",
    "vae": "models/VAE",
    "controlnet": "models/ControlNet",
    "upscaler": "models/ESRGAN",
    "motionmodule": "extensions/sd-webui-animatediff/model",
}
LAYOUTS = ("flat", "comfyui", "a1111", "template")
TEMPLATE_FIELDS = (
    "type",
    "base_model",
    "model_name",
    "model_id",
    "version_name",
    "version_id",
    "creator",
    "file_name",
    "file_id",
)


def _type_key(model_type: str) -> str:
    return model_type.replace(" ", "").replace("_", "").lower()


def check_template(template: str) -> None:
    """Refuse a template with unknown fields, without ``{file_name}``, or that cannot apply."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise CivitaiTuiError(FailureKind.BAD_CONFIG, f"bad layout template: {exc}") from None
    unknown = sorted(set(names) - set(TEMPLATE_FIELDS))
    if unknown:
        raise CivitaiTuiError(
            FailureKind.BAD_CONFIG,
            f"layout template {template!r} has unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(TEMPLATE_FIELDS)}",
        )
    if "{file_name}" not in template.replace("\\", "/").rsplit("/", 1)[-1]:
        raise CivitaiTuiError(
            FailureKind.BAD_CONFIG, f"layout template {template!r} must end in {{file_name}}"
        )
    try:  # conversions and format specs ({model_id:d}) fail only when applied
        template.format(**dict.fromkeys(TEMPLATE_FIELDS, "x"))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise CivitaiTuiError(
            FailureKind.BAD_CONFIG, f"layout template {template!r} cannot be applied ({exc})"
        ) from None


@dataclass
class LibraryLayout:
    """Places files under ``root`` by layout, resolving collisions."""

    root: Path
    layout: str = "flat"
    template: str = "{type}/{base_model}/{model_name}/{file_name}"
    _taken: dict[Path, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise CivitaiTuiError(
                FailureKind.BAD_CONFIG,
                f"unknown layout {self.layout!r}; expected one of {', '.join(LAYOUTS)}",
            )
        if self.layout == "template":
            check_template(self.template)
        self.root = Path(self.root)

    def place(self, info: FileInfo, filename: str) -> Path:
        """The final path of ``filename`` (a file described by ``info``)."""
        path = self.root / self._relative(info, safe_filename(filename))
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise CivitaiTuiError(FailureKind.FILESYSTEM, f"{filename!r} would leave {self.root}")
        owner = self._taken.setdefault(path, info.key)
        if owner != info.key:
            path = self._disambiguate(path, info)
            self._taken[path] = info.key
        return path

    def _relative(self, info: FileInfo, name: str) -> Path:
        kind = _type_key(info.model_type)
        if self.layout == "comfyui":
            return Path(COMFYUI_FOLDERS.get(kind, "other"), name)
        if self.layout == "a1111":
            return Path(A1111_FOLDERS.get(kind, "models/Other"), name)
        if self.layout == "flat":
            return Path(name)
        values = {
            "type": info.model_type,
            "base_model": info.base_model,
            "model_name": info.model_name,
            "model_id": info.model_id,
            "version_name": info.version_name,
            "version_id": info.version_id,
            "creator": info.creator,
            "file_name": name,
            "file_id": info.file_id,
        }
        values = {k: "" if v is None else str(v) for k, v in values.items()}
        parts = [p for p in self.template.replace("\\", "/").split("/") if p]
        return Path(*(safe_filename(p.format(**values), fallback="unknown") for p in parts))

    @staticmethod
    def _disambiguate(path: Path, info: FileInfo) -> Path:
        tag = info.file_id if info.file_id is not None else zlib.crc32(info.key.encode())
        stem, dot, ext = path.name.rpartition(".")
        candidate = f"{stem} ({tag}).{ext}" if dot and stem else f"{path.name} ({tag})"
        return path.with_name(safe_filename(candidate))
