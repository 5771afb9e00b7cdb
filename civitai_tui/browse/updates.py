"""Which model files in the library CivitAI knows, and which have a newer version.

Every model file under the destination(s) is identified by its SHA256 from the
library index (:class:`~civitai_tui.bulk.library.LibraryIndex`: a file is hashed
once, again only when its size or modification time changes). The hashes go to
``POST /api/v1/model-versions/by-hash`` 100 at a time, and the models found to
``/api/v1/models?ids=...`` 100 at a time for their newest version, through the
client's shared rate limiter (``api.requests_per_second``): a library of N files
costs about N/50 API calls the first time. Both answers are cached per hash and
per model (``browse.cache_ttl``, unknown hashes too), so a second check within
that time costs no call at all.

A file has an update when its model lists a version newer than the file's own
(versions come newest first; a version missing from the list, e.g. unpublished,
is compared by publication date).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civitai_tui.browse.cache import AnswerCache, Cached
from civitai_tui.browse.records import LibraryEntry
from civitai_tui.browse.text import line_text
from civitai_tui.bulk.library import LibraryIndex
from civitai_tui.civitai.client import HASH_BATCH, CivitAIClient
from civitai_tui.civitai.models import Model
from civitai_tui.errors import CivitaiTuiError, FailureKind

#: ``ids`` per ``/api/v1/models`` call (the API's page limit).
IDS_BATCH = 100


@dataclass(frozen=True)
class Known:
    """What CivitAI said about one hash (cached as a dict)."""

    model_id: int
    model_name: str
    version_id: int
    version_name: str
    published_at: str | None


@dataclass(frozen=True)
class Newest:
    """A model's published versions, newest first (cached as a dict)."""

    version_ids: tuple[int, ...]
    version_names: tuple[str, ...]
    published: tuple[str | None, ...]


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    return (items[i : i + size] for i in range(0, len(items), size))


class UpdateChecker:
    """Library entries for destination folders, from the index, the cache and the API."""

    def __init__(self, index: LibraryIndex, client: CivitAIClient, cache: AnswerCache) -> None:
        self.index = index
        self.client = client
        self.cache = cache

    async def check(
        self, roots: Sequence[Path], ttl: float, *, refresh: bool = False
    ) -> list[LibraryEntry]:
        files: dict[Path, str] = {}
        for root in roots:
            await asyncio.to_thread(self.index.scan, root)
            files.update(await asyncio.to_thread(self.index.entries, root))
        known = await self._by_hash(sorted(set(files.values())), ttl, refresh)
        model_ids = sorted({k.model_id for k in known.values() if k is not None})
        newest = await self._newest(model_ids, ttl, refresh)
        return [_entry(path, sha, known.get(sha), newest) for path, sha in sorted(files.items())]

    async def _by_hash(
        self, hashes: list[str], ttl: float, refresh: bool
    ) -> dict[str, Known | None]:
        found: dict[str, Known | None] = {}
        cached = await self._cached([f"hash:{sha}" for sha in hashes], ttl, refresh)
        missing = []
        for sha in hashes:
            hit = cached.get(f"hash:{sha}")
            if hit is None:
                missing.append(sha)
            else:
                found[sha] = Known(**hit.value) if hit.value else None
        for batch in _chunks(missing, HASH_BATCH):
            versions = await self.client.versions_by_hashes(batch)
            answers: dict[str, Any] = {}
            for sha in batch:
                version = next((v for v in versions if any(f.has_hash(sha) for f in v.files)), None)
                known = None
                if version is not None and version.model_id is not None:
                    known = Known(
                        model_id=version.model_id,
                        model_name=line_text(version.model_name),
                        version_id=version.id,
                        version_name=line_text(version.name),
                        published_at=version.published_at,
                    )
                found[sha] = known
                answers[f"hash:{sha}"] = vars(known) if known else None
            await asyncio.to_thread(self.cache.put_many, answers)
        return found

    async def _cached(self, keys: list[str], ttl: float, refresh: bool) -> dict[str, Cached]:
        if refresh:
            return {}
        return await asyncio.to_thread(self.cache.get_many, keys, ttl)

    async def _newest(self, model_ids: list[int], ttl: float, refresh: bool) -> dict[int, Newest]:
        newest: dict[int, Newest] = {}
        cached = await self._cached([f"versions:{m}" for m in model_ids], ttl, refresh)
        missing = []
        for model_id in model_ids:
            hit = cached.get(f"versions:{model_id}")
            if hit is None:
                missing.append(model_id)
            elif hit.value:
                newest[model_id] = Newest(*(tuple(v) for v in hit.value))
        for batch in _chunks(missing, IDS_BATCH):
            params = [
                ("ids", ",".join(str(i) for i in batch)),
                ("limit", str(IDS_BATCH)),
                ("nsfw", "true"),
            ]
            items, _ = await self.client.models_page(params)
            for item in items:
                try:
                    model = Model.from_json(item)
                except ValueError:
                    continue
                versions = model.versions
                newest[model.id] = Newest(
                    tuple(v.id for v in versions),
                    tuple(line_text(v.name) for v in versions),
                    tuple(v.published_at for v in versions),
                )
            answers: dict[str, Any] = {}
            for model_id in batch:
                entry = newest.get(model_id)
                answers[f"versions:{model_id}"] = (
                    None
                    if entry is None
                    else [entry.version_ids, entry.version_names, entry.published]
                )
            await asyncio.to_thread(self.cache.put_many, answers)
        return newest


def _entry(path: Path, sha: str, known: Known | None, newest: dict[int, Newest]) -> LibraryEntry:
    if known is None:
        return LibraryEntry(
            path=str(path),
            sha256=sha,
            known=False,
            model_id=None,
            model_name=None,
            version_id=None,
            version_name=None,
            newest_version_id=None,
            newest_version_name=None,
            has_update=False,
        )
    versions = newest.get(known.model_id)
    newest_id = newest_name = None
    has_update = False
    if versions is not None and versions.version_ids:
        newest_id, newest_name = versions.version_ids[0], versions.version_names[0]
        if known.version_id in versions.version_ids:
            has_update = versions.version_ids.index(known.version_id) > 0
        else:
            latest = versions.published[0]
            has_update = bool(latest and known.published_at and latest > known.published_at)
    return LibraryEntry(
        path=str(path),
        sha256=sha,
        known=True,
        model_id=known.model_id,
        model_name=known.model_name,
        version_id=known.version_id,
        version_name=known.version_name,
        newest_version_id=newest_id,
        newest_version_name=newest_name,
        has_update=has_update,
    )


def update_destinations(
    entries: Sequence[LibraryEntry],
    roots: Sequence[Path],
    version_ids: Sequence[int],
    dest: str | None,
    layout: str,
) -> list[tuple[int, str]]:
    """(version id, folder) for each update to queue, never replacing anything.

    With ``dest`` every version goes there. Otherwise each goes beside the file
    it updates (from the last library check): in that file's own folder with the
    flat layout, or under the destination it was found in with a sorting layout
    (which puts the new version in the same sub-folder as the old one). A version
    that updates nothing in that check is refused (BAD_TARGET).
    """
    plan: list[tuple[int, str]] = []
    for version_id in dict.fromkeys(version_ids):
        if dest is not None:
            plan.append((version_id, dest))
            continue
        olds = [e for e in entries if e.has_update and e.newest_version_id == version_id]
        if not olds:
            raise CivitaiTuiError(
                FailureKind.BAD_TARGET,
                f"version {version_id} is not an update of a file in the last library check; "
                "check the library first, or give a destination",
            )
        folders = dict.fromkeys(_beside(Path(e.path), roots, layout) for e in olds)
        plan += [(version_id, folder) for folder in folders]
    return plan


def _beside(path: Path, roots: Sequence[Path], layout: str) -> str:
    if layout == "flat":
        return str(path.parent)
    under = [r.resolve() for r in roots if path.is_relative_to(r.resolve())]
    return str(max(under, key=lambda r: len(r.parts))) if under else str(path.parent)
