"""The API's fixed filter values (model types, sorts, periods), checked before any request.

``/api/v1/models`` answers an unknown ``types``, ``sort`` or ``period`` with a
400 and a long validation dump; the command line checks them first, accepts
any case and spacing (``lora``, ``most downloaded``, ``alltime``) and sends the
API's own spelling. Values from the reference (``shared/reference/civitai-api.md``:
prisma ``ModelType``, ``ModelSort``, ``MetricTimeframe``).
"""

from __future__ import annotations

from civitai_tui.errors import CivitaiTuiError, FailureKind

MODEL_TYPES = (
    "Checkpoint", "TextualInversion", "Hypernetwork", "AestheticGradient", "LORA", "LoCon",
    "DoRA", "Controlnet", "Upscaler", "MotionModule", "VAE", "TextEncoder", "UNet",
    "CLIPVision", "Poses", "Wildcards", "Workflows", "ComfyWorkflows", "Detection",
    "VisionLanguage", "CLIP", "LLM", "Other",
)  # fmt: skip
SORTS = (
    "Highest Rated", "Most Downloaded", "Most Liked", "Most Discussed", "Most Collected",
    "Most Images", "Newest", "Oldest",
)  # fmt: skip
PERIODS = ("AllTime", "Year", "Month", "Week", "Day")
#: Common ``baseModels`` values (the list grows with every new family; any string is sent as is).
BASE_MODELS = (
    "SD 1.4", "SD 1.5", "SD 2.0", "SD 2.1", "SDXL 1.0", "SDXL Turbo", "SD 3", "SD 3.5",
    "Pony", "Illustrious", "NoobAI", "Flux.1 S", "Flux.1 D", "Other",
)  # fmt: skip


def _key(value: str) -> str:
    return "".join(value.split()).replace("_", "").replace("-", "").lower()


def canonical(value: str, allowed: tuple[str, ...], what: str) -> str:
    """``value`` in the API's spelling, or BAD_TARGET naming every allowed value."""
    for spelling in allowed:
        if _key(spelling) == _key(value):
            return spelling
    raise CivitaiTuiError(
        FailureKind.BAD_TARGET, f"unknown {what} {value!r}; choose one of: {', '.join(allowed)}"
    )
