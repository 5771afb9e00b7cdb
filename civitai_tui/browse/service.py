"""The engine's Browse service: search, model details, preview images, the library check.

One :class:`Browser` per engine. Its CivitAI client shares the engine's rate
limiters (``api.*``), so browsing and the queue spend one API budget; every
answer is cached on disk (:mod:`civitai_tui.browse.cache`) for
``browse.cache_ttl`` seconds unless the caller asks to ``refresh``. Images are
fetched through the same connector (proxy, TLS trust, URL policy), only from the
image origins CivitAI's own answers named, a few at a time, and cached.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiohttp

from civitai_tui.binding import bound
from civitai_tui.browse import convert
from civitai_tui.browse.cache import AnswerCache, ImageCache
from civitai_tui.browse.records import BrowsePage, BrowseQuery, LibraryEntry, ModelDetail
from civitai_tui.browse.updates import UpdateChecker
from civitai_tui.bulk.library import LibraryIndex
from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.civitai.images import Image, fetch_image, image_type, sized_url
from civitai_tui.civitai.models import Model
from civitai_tui.civitai.urls import origin
from civitai_tui.civitai.vocabulary import MODEL_TYPES, PERIODS, SORTS, canonical
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.net.connector import RoutedConnector

log = logging.getLogger(__name__)
R = TypeVar("R", BrowsePage, ModelDetail)

#: Image fetches running at once (the rest wait; API calls never do).
IMAGE_FETCHES = 4
#: Widths an image may be asked at (pixels).
MIN_WIDTH, MAX_WIDTH = 16, 2048
#: The image CDN of the real CivitAI (its answers may be cached from an earlier run).
CIVITAI_IMAGES = origin("https://image.civitai.com/")
_IMAGE_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=15, sock_read=30)


@dataclass
class BrowseSettings:
    """The ``browse.*`` keys; the engine applies a change to this object live."""

    cache_ttl: float = bound("browse.cache_ttl", 3600.0)
    nsfw_level: int = bound("browse.nsfw_level", 1)


def bad(message: str) -> CivitaiTuiError:
    return CivitaiTuiError(FailureKind.BAD_TARGET, message)


def search_params(query: BrowseQuery) -> list[tuple[str, str]]:
    """``query`` as ``/api/v1/models`` parameters; BAD_TARGET for a value the API refuses."""
    if not 1 <= query.limit <= 100:
        raise bad(f"limit must be from 1 to 100, not {query.limit}")
    params = [("limit", str(query.limit))]
    if query.query.strip():
        params.append(("query", query.query.strip()))
    params += [("types", canonical(t, MODEL_TYPES, "model type")) for t in query.types]
    params += [("baseModels", b) for b in query.base_models if b.strip()]
    params += [
        ("sort", canonical(query.sort, SORTS, "sort")),
        ("period", canonical(query.period, PERIODS, "period")),
        ("nsfw", "true" if query.nsfw else "false"),
    ]
    if query.cursor:
        params.append(("cursor", query.cursor))
    return params


class Browser:
    """Search, details, images and updates for the control API (start, then close)."""

    def __init__(
        self,
        state_dir: Path,
        client: CivitAIClient,
        settings: BrowseSettings,
        *,
        allow_http: bool = False,
    ) -> None:
        self.client = client
        self.settings = settings
        self.allow_http = allow_http
        cache_dir = state_dir / "browse-cache"
        self.answers = AnswerCache(cache_dir / "api")
        self.images = ImageCache(cache_dir / "images")
        self._index = LibraryIndex(state_dir / "state.db")
        self.updates = UpdateChecker(self._index, client, self.answers)
        self._image_origins = {CIVITAI_IMAGES}
        self._image_slots = asyncio.Semaphore(IMAGE_FETCHES)
        self._session: aiohttp.ClientSession | None = None
        #: The last library check and its folders, for queueing its updates.
        self.last_library: list[LibraryEntry] = []
        self.last_roots: list[Path] = []

    async def start(self) -> None:
        await self.client.__aenter__()
        self._session = aiohttp.ClientSession(
            connector=RoutedConnector(), timeout=_IMAGE_TIMEOUT, trust_env=False
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self.client.close()
        self._index.close()

    def _cached(self, key: str, refresh: bool, record: type[R]) -> R | None:
        """The cached ``record`` under ``key`` with its age, or None (missing, stale,
        unreadable: a cache written by another version is only a miss)."""
        hit = None if refresh else self.answers.get(key, self.settings.cache_ttl)
        if hit is None or not isinstance(hit.value, dict):
            return None
        try:
            return record.from_dict({**hit.value, "age_s": hit.age_s})
        except TypeError:
            return None

    def _saw_images(self, urls: Sequence[str]) -> None:
        self._image_origins.update(origin(u) for u in urls)

    async def search(self, query: BrowseQuery, *, refresh: bool = False) -> BrowsePage:
        """One page of results (``query.cursor``: the page after it)."""
        params = search_params(query)
        level = self.settings.nsfw_level
        key = "search:" + json.dumps([params, level])
        page = self._cached(key, refresh, BrowsePage)
        if page is None:
            items, cursor = await self.client.models_page(params)
            rows = []
            for item in items:
                try:
                    rows.append(convert.summary(Model.from_json(item), level))
                except ValueError:
                    log.info("browse: skipped a search result without an id")
            page = BrowsePage(tuple(rows), cursor, 0.0)
            self.answers.put(key, page.to_dict())
        self._saw_images([r.preview.url for r in page.items if r.preview is not None])
        return page

    async def model(self, model_id: int, *, refresh: bool = False) -> ModelDetail:
        """A model's detail pane (versions newest first, description as plain text)."""
        if not 1 <= model_id <= 2_147_483_647:
            raise bad(f"{model_id} is not a CivitAI model id")
        level = self.settings.nsfw_level
        key = f"model:{model_id}:{level}"
        detail = self._cached(key, refresh, ModelDetail)
        if detail is None:
            data = await self.client.model_data(model_id)
            page_url = f"{self.client.base_url}/models/{model_id}"
            try:
                detail = convert.detail(data, page_url, level)
            except ValueError as exc:
                raise CivitaiTuiError(
                    FailureKind.API, f"model {model_id}: CivitAI sent data we cannot read ({exc})"
                ) from None
            self.answers.put(key, detail.to_dict())
        self._saw_images([i.url for v in detail.versions for i in v.images])
        return detail

    async def image(self, url: str, width: int) -> Image:
        """The image at ``url``, ``width`` pixels wide, from the cache or its CDN."""
        if not MIN_WIDTH <= width <= MAX_WIDTH:
            raise bad(f"width must be from {MIN_WIDTH} to {MAX_WIDTH} pixels, not {width}")
        if origin(url) not in self._image_origins:
            raise CivitaiTuiError(
                FailureKind.FORBIDDEN,
                "only images named by CivitAI's answers are fetched; search or open the model "
                "first",
            )
        sized = sized_url(url, width)
        cached = await asyncio.to_thread(self.images.get, sized)
        kind = image_type(cached) if cached is not None else None
        if cached is not None and kind is not None:
            return Image(cached, kind)
        assert self._session is not None, "Browser.start() first"
        async with self._image_slots:
            image = await fetch_image(self._session, sized, allow_http=self.allow_http)
        await asyncio.to_thread(self.images.put, sized, image.data)
        return image

    async def library(self, roots: Sequence[Path], *, refresh: bool = False) -> list[LibraryEntry]:
        """Every model file under ``roots`` with its model, version and update flag."""
        if not roots:
            raise bad("no destination to check: give one (--dest) or set bulk.dest")
        entries = await self.updates.check(roots, self.settings.cache_ttl, refresh=refresh)
        self.last_library, self.last_roots = entries, list(roots)
        return entries
