"""Which files of a model version to download.

By default only the primary file (falling back to the first ``Model`` file,
then the first file). Filters narrow the candidates by format, precision,
size variant and file type; with ``primary_only=False`` every candidate is kept.
Matching is case-insensitive.
"""

from __future__ import annotations

from dataclasses import dataclass

from civitai_tui.civitai.models import ModelFile, ModelVersion


@dataclass(frozen=True)
class FileSelection:
    primary_only: bool = True
    formats: tuple[str, ...] = ()  # e.g. ("SafeTensor",); empty = any
    fp: str | None = None  # e.g. "fp16"
    size: str | None = None  # "full" | "pruned"
    include_types: tuple[str, ...] = ()  # files[].type, e.g. ("Model", "VAE"); empty = any


def _same(value: str | None, wanted: str) -> bool:
    return (value or "").casefold() == wanted.casefold()


def _matches(file: ModelFile, selection: FileSelection) -> bool:
    return (
        (not selection.formats or any(_same(file.format, f) for f in selection.formats))
        and (selection.fp is None or _same(file.fp, selection.fp))
        and (selection.size is None or _same(file.size_variant, selection.size))
        and (
            not selection.include_types or any(_same(file.type, t) for t in selection.include_types)
        )
    )


def select_files(version: ModelVersion, selection: FileSelection) -> list[ModelFile]:
    """The files of ``version`` that ``selection`` asks for, in API order."""
    candidates = [f for f in version.files if _matches(f, selection)]
    if not selection.primary_only:
        return candidates
    chosen = (
        next((f for f in candidates if f.primary), None)
        or next((f for f in candidates if _same(f.type, "Model")), None)
        or next(iter(candidates), None)
    )
    return [chosen] if chosen else []
