"""Strict RFC 9110 byte ranges: ``Range`` parsing and ``If-Range`` evaluation.

``bytes=a-b`` (inclusive end, clamped to the size), ``bytes=a-`` and
``bytes=-n`` (the last n bytes). A syntactically invalid header is ignored (the
whole body is served); a valid one that no range satisfies raises
:class:`Unsatisfiable` (416). Several ranges are answered with the whole body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class Unsatisfiable(Exception):
    """No requested range overlaps the representation."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def _one(spec: str, size: int) -> ByteRange | None:
    """One range-spec; None if unsatisfiable; ValueError if invalid."""
    match = _SPEC.match(spec)
    if match is None or match.group(1) == match.group(2) == "":
        raise ValueError(spec)
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            return None
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:
        raise ValueError(spec)
    if start >= size:
        return None
    return ByteRange(start, min(int(last) if last else size - 1, size - 1))


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single range to serve, or None for the whole body."""
    if header is None:
        return None
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs:
        return None
    try:
        ranges = [_one(spec, size) for spec in specs.split(",")]
    except ValueError:
        return None
    satisfiable = [r for r in ranges if r is not None]
    if not satisfiable:
        raise Unsatisfiable(header)
    return satisfiable[0] if len(ranges) == 1 else None


def if_range_holds(header: str | None, etag: str, last_modified: datetime) -> bool:
    """True when ``If-Range`` is absent or still matches (strong comparison)."""
    if header is None:
        return True
    value = header.strip()
    if value.startswith(('"', "W/")):
        return value == etag
    try:
        return parsedate_to_datetime(value) == last_modified.replace(microsecond=0)
    except (TypeError, ValueError):
        return False
