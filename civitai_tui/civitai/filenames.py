"""Turning a server-supplied file name into one safe path component.

Names come from CivitAI (``files[].name``), Content-Disposition or a URL, and
are hostile input: no separators, no ``..``, no control characters, no Windows
reserved names (``CON``, ``NUL``, ``COM1`` ...), no trailing dots or spaces,
and at most 200 bytes of UTF-8 (the extension is kept when shortening).
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 200

_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
)


def _truncate_utf8(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def _shorten(name: str, limit: int) -> str:
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and stem and 0 < len(ext.encode("utf-8")) <= 16:
        room = limit - len(ext.encode("utf-8")) - 1
        return f"{_truncate_utf8(stem, room).rstrip(' .')}.{ext}"
    return _truncate_utf8(name, limit)


def safe_filename(name: str, fallback: str = "download") -> str:
    """``name`` made safe to use as a single file name inside the destination folder."""
    cleaned = unicodedata.normalize("NFC", name)
    cleaned = _UNSAFE_CHARS.sub("_", cleaned)
    cleaned = cleaned.replace("..", "_").strip().strip(".").strip()
    if not cleaned:
        cleaned = fallback
    if cleaned.split(".", 1)[0].upper().rstrip() in _RESERVED:
        cleaned = f"_{cleaned}"
    return _shorten(cleaned, MAX_NAME_BYTES)
