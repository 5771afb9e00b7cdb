"""Browse's typed records: what the engine answers and the Browse screen shows.

Frozen dataclasses carried as JSON over the control API (``to_dict`` /
``from_dict``), shared by the engine (which builds them from CivitAI's answers)
and the TUI (which only reads them). No I/O here: no aiohttp, no textual.

``from_dict`` checks every field against its annotation and raises
``TypeError`` naming the record and the field; unknown keys are ignored (a newer
engine may send more), a missing key takes the field's default or is an error.
Dates travel as ISO 8601 strings, tuples as lists.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from datetime import datetime
from typing import Any, Self

#: How much of a bad value a ``TypeError`` message quotes.
_SHOWN = 60


class Record:
    """JSON conversion for the frozen dataclasses below, driven by their annotations."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples → lists, datetimes → ISO strings, records → dicts)."""
        return {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """The record ``data`` describes; ``TypeError`` names the first bad field."""
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__} must be a JSON object, not {_shown(data)}")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise TypeError(f"{cls.__name__}.{f.name} is missing")
                continue
            values[f.name] = _decode(_hints(cls)[f.name], data[f.name], f"{cls.__name__}.{f.name}")
        return cls(**values)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _encode(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _decode(hint: Any, value: Any, where: str) -> Any:
    """``value`` (from JSON) as ``hint`` says, or ``TypeError`` naming ``where``."""
    origin = typing.get_origin(hint)
    if origin is types.UnionType:
        options = typing.get_args(hint)
        if value is None and types.NoneType in options:
            return None
        (inner,) = [o for o in options if o is not types.NoneType]
        return _decode(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise TypeError(f"{where} must be a list, not {_shown(value)}")
        (inner, _ellipsis) = typing.get_args(hint)
        return tuple(_decode(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(hint, type) and issubclass(hint, Record):
        try:
            return hint.from_dict(value)
        except TypeError as error:
            raise TypeError(f"{where}: {error}") from None
    if hint is datetime:
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                pass
        raise TypeError(f"{where} must be an ISO 8601 date, not {_shown(value)}")
    if hint is float and type(value) in (int, float):
        return float(value)
    if type(value) is not hint:  # exact: a bool is no int here
        raise TypeError(f"{where} must be {hint.__name__}, not {_shown(value)}")
    return value


@dataclasses.dataclass(frozen=True)
class BrowseQuery(Record):
    """One search of ``/api/v1/models`` (the API's own spellings of types, sorts, periods)."""

    query: str = ""
    types: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    sort: str = "Highest Rated"
    period: str = "AllTime"
    nsfw: bool = False
    cursor: str | None = None
    limit: int = 20


@dataclasses.dataclass(frozen=True)
class ImageRef(Record):
    """A preview image: its URL (``/width=N/`` selects the size) and NSFW level bitflag."""

    url: str
    width: int
    height: int
    nsfw_level: int


@dataclasses.dataclass(frozen=True)
class ModelSummary(Record):
    """One result row; ``preview`` is the first image within ``browse.nsfw_level``."""

    id: int
    name: str
    creator: str
    type: str
    base_model: str
    downloads: int
    rating: float | None
    newest_version_date: datetime | None
    preview: ImageRef | None


@dataclasses.dataclass(frozen=True)
class BrowsePage(Record):
    """One page of results; ``age_s``: how old the (possibly cached) answer is."""

    items: tuple[ModelSummary, ...]
    next_cursor: str | None
    age_s: float


@dataclasses.dataclass(frozen=True)
class FileInfo(Record):
    """One file of a version, with CivitAI's scan verdicts (Pending|Success|Danger|Error)."""

    id: int
    name: str
    size_bytes: int
    format: str
    fp: str | None
    pickle_scan: str
    virus_scan: str
    primary: bool


@dataclasses.dataclass(frozen=True)
class VersionInfo(Record):
    id: int
    name: str
    base_model: str
    published_at: datetime | None
    files: tuple[FileInfo, ...]
    trained_words: tuple[str, ...]
    images: tuple[ImageRef, ...]


@dataclasses.dataclass(frozen=True)
class ModelDetail(Record):
    """A model's detail pane; ``description_text`` is already plain, safe text."""

    summary: ModelSummary
    description_text: str
    allow_commercial_use: tuple[str, ...]
    allow_no_credit: bool
    versions: tuple[VersionInfo, ...]  # newest first
    page_url: str
    age_s: float


@dataclasses.dataclass(frozen=True)
class LibraryEntry(Record):
    """A model file found in a destination, identified by SHA256 (``known``: CivitAI has it)."""

    path: str
    sha256: str
    known: bool
    model_id: int | None
    model_name: str | None
    version_id: int | None
    version_name: str | None
    newest_version_id: int | None
    newest_version_name: str | None
    has_update: bool
