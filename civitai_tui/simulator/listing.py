"""``GET /api/v1/models``: query validation, filters, sort and pagination.

Mirrors the real server's rules (reference §1.2): ``limit`` 0-100 (0 or absent
means 100), ``page*limit > 1000`` → 429, ``query`` with ``page`` → 400, enum
params validated with a Zod-like 400, repeatable ``types``/``baseModels``,
opaque cursors (a numeric offset with ``query``). ``period`` keeps models whose
latest version was published within the period. Without ``nsfw=true`` only
PG models are listed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from multidict import MultiMapping

from civitai_tui.simulator.catalogue import Catalogue, SimModel
from civitai_tui.simulator.httperrors import ApiError, zod_error

MAX_LIMIT = 100
MAX_PAGE_ITEMS = 1000
MODEL_TYPES = (
    "Checkpoint",
    "TextualInversion",
    "Hypernetwork",
    "AestheticGradient",
    "LORA",
    "LoCon",
    "DoRA",
    "Controlnet",
    "Upscaler",
    "MotionModule",
    "VAE",
    "Poses",
    "Wildcards",
    "Workflows",
    "Detection",
    "Other",
)
BASE_MODELS = (
    "SD 1.4",
    "SD 1.5",
    "SD 2.0",
    "SD 2.1",
    "SDXL 1.0",
    "SDXL Turbo",
    "SD 3",
    "SD 3.5",
    "Pony",
    "Illustrious",
    "NoobAI",
    "Flux.1 S",
    "Flux.1 D",
    "Other",
)
SORTS: dict[str, Callable[[SimModel], Any]] = {
    "Highest Rated": lambda m: m.stats.thumbs_up,
    "Most Downloaded": lambda m: m.stats.download_count,
    "Most Liked": lambda m: m.stats.thumbs_up,
    "Most Discussed": lambda m: m.stats.comments,
    "Most Collected": lambda m: m.stats.collected,
    "Most Images": lambda m: m.image_count,
    "Newest": lambda m: m.last_published_at,
    "Oldest": lambda m: m.last_published_at,
}
PERIODS = {
    "AllTime": None,
    "Year": timedelta(days=365),
    "Month": timedelta(days=30),
    "Week": timedelta(days=7),
    "Day": timedelta(days=1),
}
BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class ListingQuery:
    limit: int = MAX_LIMIT
    page: int | None = None
    cursor: str | None = None
    query: str | None = None
    username: str | None = None
    tag: str | None = None
    types: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    sort: str = "Highest Rated"
    period: str = "AllTime"
    nsfw: bool = False
    primary_only: bool = False
    ids: tuple[int, ...] = ()
    favorites: bool = False
    hidden: bool = False


def _int(params: MultiMapping[str], name: str, low: int, high: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise zod_error(name, f"Expected number, received {raw!r}", "invalid_type") from None
    if not low <= value <= high:
        raise zod_error(name, f"Number must be between {low} and {high}", "too_big")
    return value


def _bool(params: MultiMapping[str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw.lower() not in BOOLEANS:
        raise zod_error(name, f"Expected boolean, received {raw!r}", "invalid_type")
    return BOOLEANS[raw.lower()]


def _enum(value: str, name: str, options: tuple[str, ...]) -> str:
    if value not in options:
        expected = " | ".join(f"'{o}'" for o in options)
        raise zod_error(
            name,
            f"Invalid enum value. Expected {expected}, received '{value}'",
            "invalid_enum_value",
            received=value,
            options=list(options),
        )
    return value


def _ids(raw: str | None) -> tuple[int, ...]:
    if not raw:
        return ()
    try:
        return tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise zod_error("ids", f"Expected comma-separated numbers, received {raw!r}") from None


def parse_query(params: MultiMapping[str]) -> ListingQuery:
    """Validate the query string; raises :class:`ApiError` (400/429) like the real server."""
    limit = _int(params, "limit", 0, MAX_LIMIT) or MAX_LIMIT
    page = _int(params, "page", 1, 2**31 - 1)
    query = params.get("query") or None
    if page is not None and query is not None:
        raise ApiError(
            400, {"error": "Cannot use page param with query search. Use cursor-based pagination."}
        )
    if page is not None and page * limit > MAX_PAGE_ITEMS:
        raise ApiError(
            429, {"error": "You've requested too many pages, please use cursors instead"}
        )
    return ListingQuery(
        limit=limit,
        page=page,
        cursor=params.get("cursor") or None,
        query=query,
        username=params.get("username") or None,
        tag=params.get("tag") or None,
        types=tuple(_enum(v, "types", MODEL_TYPES) for v in params.getall("types", [])),
        base_models=tuple(
            _enum(v, "baseModels", BASE_MODELS) for v in params.getall("baseModels", [])
        ),
        sort=_enum(params.get("sort", "Highest Rated"), "sort", tuple(SORTS)),
        period=_enum(params.get("period", "AllTime"), "period", tuple(PERIODS)),
        nsfw=_bool(params, "nsfw"),
        primary_only=_bool(params, "primaryFileOnly"),
        ids=_ids(params.get("ids")),
        favorites=_bool(params, "favorites"),
        hidden=_bool(params, "hidden"),
    )


def _matches(model: SimModel, q: ListingQuery, since: datetime | None) -> bool:
    checks = (
        q.nsfw or not model.nsfw,
        not q.types or model.type in q.types,
        not q.base_models or any(v.base_model in q.base_models for v in model.versions),
        not q.username or model.creator.lower() == q.username.lower(),
        not q.tag or q.tag.lower() in (t.lower() for t in model.tags),
        not q.ids or model.id in q.ids,
        since is None or model.last_published_at >= since,
        not q.query or _text_match(model, q.query),
    )
    return all(checks)


def _text_match(model: SimModel, text: str) -> bool:
    needle = text.lower()
    return needle in model.name.lower() or any(needle in tag.lower() for tag in model.tags)


def select(catalogue: Catalogue, q: ListingQuery, now: datetime) -> list[SimModel]:
    """The matching models in ``q.sort`` order (ties: newer id first)."""
    if q.favorites or q.hidden:
        return []  # the simulated account has no favourites or hidden models
    window = PERIODS[q.period]
    since = now - window if window is not None else None
    found = [m for m in catalogue.models if _matches(m, q, since)]
    key = SORTS[q.sort]
    found.sort(key=lambda m: m.id, reverse=True)
    found.sort(key=key, reverse=q.sort != "Oldest")
    return found


@dataclass(frozen=True)
class Page:
    items: list[SimModel]
    next_cursor: str | None
    current_page: int | None


def encode_cursor(q: ListingQuery, offset: int, last: SimModel) -> str:
    return str(offset) if q.query else f"{last.id}|{offset}"


def decode_cursor(q: ListingQuery) -> int:
    if q.cursor is None:
        return 0
    raw = q.cursor if q.query else q.cursor.rpartition("|")[2]
    if not raw.isdigit() or (not q.query and "|" not in q.cursor):
        raise zod_error("cursor", f"Invalid cursor {q.cursor!r}")
    return int(raw)


def paginate(models: list[SimModel], q: ListingQuery) -> Page:
    """One page of ``models`` by page number or cursor."""
    start = (q.page - 1) * q.limit if q.page is not None else decode_cursor(q)
    items = models[start : start + q.limit]
    end = start + len(items)
    more = end < len(models) and items
    next_cursor = encode_cursor(q, end, items[-1]) if more else None
    return Page(items=items, next_cursor=next_cursor, current_page=q.page)
