"""A scripted Browse catalogue: fixed models, versions, files, pictures and a library.

The same records the engine sends, made here so that snapshots do not move; it
pages with a cursor and filters by type, base model and words like the engine.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image

from civitai_tui.browse.records import (
    BrowsePage,
    BrowseQuery,
    FileInfo,
    ImageRef,
    LibraryEntry,
    ModelDetail,
    ModelSummary,
    VersionInfo,
)
from tests.tui.scripted import ScriptedEngine

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TYPES = ("Checkpoint", "LORA", "TextualInversion", "VAE", "Controlnet")
BASES = ("SDXL 1.0", "SD 1.5", "Pony", "Flux.1 D", "Illustrious")
HOSTILE_NAME = "[b]bold[/b] [link=https://evil.example]x[/link] \x1b]52;c;SGk=\x07\x1b[2J:smile:"
HOSTILE_DESCRIPTION = (
    "[red]not red[/red] and [@click=app.quit]quit[/]\n\x1b[31mescape\x1b[0m gone\n\n\n"
    + "<p>huge</p>" * 5000
)


def picture(seed: int, size: tuple[int, int] = (96, 128)) -> bytes:
    """A small deterministic PNG: a two-colour gradient that differs per seed."""
    image = Image.new("RGB", size)
    w, h = size
    image.putdata(
        [((x * 255 // w + seed * 40) % 256, (y * 255 // h) % 256, (seed * 70) % 256)
         for y in range(h) for x in range(w)]
    )  # fmt: skip
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _image(model_id: int, n: int, nsfw: int = 1) -> ImageRef:
    return ImageRef(f"https://image.example/{model_id}/{n}.png", 96, 128, nsfw)


def _summary(i: int) -> ModelSummary:
    name = HOSTILE_NAME if i == 3 else f"Model {i:03d} {TYPES[i % len(TYPES)]}"
    return ModelSummary(
        id=1000 + i,
        name=name,
        creator=f"creator{i % 7}",
        type=TYPES[i % len(TYPES)],
        base_model=BASES[i % len(BASES)],
        downloads=(i * 7919) % 250_000,
        rating=None if i % 11 == 0 else round(3 + (i % 20) / 10, 1),
        newest_version_date=T0 - timedelta(days=i),
        preview=_image(1000 + i, 0),
    )


def _file(fid: int, name: str, primary: bool, fmt: str = "SafeTensor") -> FileInfo:
    return FileInfo(fid, name, 2_000_000_000 + fid, fmt, "fp16", "Success", "Success", primary)


def _detail(summary: ModelSummary) -> ModelDetail:
    mid = summary.id
    versions = tuple(
        VersionInfo(
            id=mid * 10 + v,
            name=f"v{v}.0",
            base_model=summary.base_model,
            published_at=T0 - timedelta(days=30 * (3 - v)),
            files=(
                _file(mid * 100 + v * 2, f"model_{mid}_v{v}.safetensors", True),
                _file(mid * 100 + v * 2 + 1, f"model_{mid}_v{v}.ckpt", False, "PickleTensor"),
            ),
            trained_words=("trigger one", f"[i]word{v}[/i]"),
            # v1's only picture is beyond the default NSFW level
            images=(_image(mid, v, nsfw=4 if v == 1 else 1),),
        )
        for v in (3, 2, 1)
    )
    description = HOSTILE_DESCRIPTION if summary.id == 1003 else "A model.\n\nUse it well."
    return ModelDetail(
        summary=summary,
        description_text=description,
        allow_commercial_use=("Image", "Rent"),
        allow_no_credit=False,
        versions=versions,
        page_url=f"https://civitai.com/models/{mid}",
        age_s=120.0,
    )


LIBRARY = [
    LibraryEntry("/models/a.safetensors", "AA" * 32, True, 1001, "Model 001", 10011, "v1.0",
                 10013, "v3.0", True),
    LibraryEntry("/models/b.safetensors", "BB" * 32, True, 1002, "Model 002", 10023, "v3.0",
                 10023, "v3.0", False),
    LibraryEntry("/models/own.ckpt", "CC" * 32, False, None, None, None, None, None, None, False),
]  # fmt: skip


class ScriptedBrowse(ScriptedEngine):
    """The scripted engine plus Browse: ``count`` models, pages of ``query.limit``.

    ``gate``, when set, holds every search answer until the test opens it;
    ``calls`` records what was asked.
    """

    def __init__(self, count: int = 250) -> None:
        super().__init__()
        self.catalogue = [_summary(i) for i in range(count)]
        self.searches: list[BrowseQuery] = []
        self.images: list[tuple[str, int]] = []
        self.gate: asyncio.Event | None = None
        self.answered: list[float] = []  # perf_counter() when each search answered

    def _matching(self, query: BrowseQuery) -> list[ModelSummary]:
        words = query.query.lower().split()
        return [
            m
            for m in self.catalogue
            if (not query.types or m.type in query.types)
            and (not query.base_models or m.base_model in query.base_models)
            and all(w in m.name.lower() for w in words)
        ]

    async def browse_search(self, query: BrowseQuery, refresh: bool = False) -> BrowsePage:
        self.searches.append(query)
        self.calls.append(("browse_search", str(refresh)))
        if self.gate is not None:
            await self.gate.wait()
        found = self._matching(query)
        start = int(query.cursor or 0)
        end = start + query.limit
        page = BrowsePage(tuple(found[start:end]), str(end) if end < len(found) else None, 60.0)
        self.answered.append(time.perf_counter())
        return page

    async def browse_model(self, model_id: int, refresh: bool = False) -> ModelDetail:
        self.calls.append(("browse_model", str(model_id)))
        return _detail(next(m for m in self.catalogue if m.id == model_id))

    async def browse_image(self, url: str, width: int) -> bytes:
        self.images.append((url, width))
        return picture(int(url.rsplit("/", 2)[1]) + int(url.rsplit("/", 1)[1][0]))

    async def library(
        self, dest: list[str] | None = None, refresh: bool = False
    ) -> list[LibraryEntry]:
        self.calls.append(("library", str(refresh)))
        return LIBRARY

    async def queue_updates(self, version_ids: list[int], dest: str | None) -> list[str]:
        self.calls.append(("queue_updates", *map(str, version_ids)))
        return ["job-update"]

    async def preview(
        self, targets: list[str], options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self.calls.append(("preview", *targets))
        return {
            "files": len(targets),
            "total_bytes": 2_000_000_000 * len(targets),
            "already_present": 0,
            "download_bytes": 2_000_000_000 * len(targets),
            "free_bytes": 50 * 1024**3,
            "items": [
                {"name": f"file_{i}.safetensors", "type": "LORA", "size": 2_000_000_000}
                for i in range(len(targets))
            ],
        }

    async def add(
        self,
        targets: list[str],
        *,
        priority: int = 0,
        options: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        self.calls.append(("add", *targets))
        return {"id": "job-new", "name": " ".join(targets)}


def query_with(**changes: Any) -> BrowseQuery:
    return replace(BrowseQuery(), **changes)
