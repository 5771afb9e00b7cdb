"""Safetensors header validation: a cheap structural check of a whole file.

Layout: a u64 little-endian header length N, N bytes of UTF-8 JSON (an object,
optionally padded with spaces), then the data section. Every tensor entry needs
a known dtype, a shape of non-negative ints and ``data_offsets`` whose span is
exactly ``prod(shape) * itemsize``; the spans must tile the data section with no
gap or overlap, and the file must end right after it (a truncated download or a
renamed pickle fails here). Reads only the header.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

from civitai_tui.errors import CivitaiTuiError, FailureKind

MAX_HEADER = 100_000_000
DTYPE_SIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


def invalid(path: Path, reason: str) -> CivitaiTuiError:
    return CivitaiTuiError(
        FailureKind.INVALID_FORMAT, f"{path.name} is not a valid safetensors file: {reason}"
    )


def check_safetensors(path: Path) -> None:
    """Raise ``INVALID_FORMAT`` with the reason unless ``path`` is well-formed."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise invalid(path, f"only {size} bytes, shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", raw)
        if length > MAX_HEADER:
            raise invalid(path, f"header length {length} is too large (a renamed pickle?)")
        if 8 + length > size:
            raise invalid(path, f"header length {length} runs past the end of the file ({size})")
        header = fh.read(length)
    if not header.startswith(b"{"):
        raise invalid(path, "the header does not start with '{'")
    try:
        meta = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid(path, f"the header is not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise invalid(path, "the header JSON is nested too deeply to read") from exc
    if not isinstance(meta, dict):
        raise invalid(path, "the header is not a JSON object")
    data_size = _check_tensors(path, meta)
    if 8 + length + data_size != size:
        raise invalid(
            path,
            f"data section size mismatch: the header describes {data_size} bytes, "
            f"the file has {size - 8 - length} (truncated or trailing bytes)",
        )


def _check_tensors(path: Path, meta: dict) -> int:
    metadata = meta.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise invalid(path, "__metadata__ must map strings to strings")
    spans = []
    for name, entry in meta.items():
        spans.append(_tensor_span(path, name, entry))
    cursor = 0
    for begin, end in sorted(spans):
        if begin != cursor:
            raise invalid(path, f"tensor data has a gap or overlap at offset {cursor}")
        cursor = end
    return cursor


def _tensor_span(path: Path, name: str, entry: object) -> tuple[int, int]:
    if not isinstance(entry, dict):
        raise invalid(path, f"tensor {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZE:
        raise invalid(path, f"tensor {name!r} has an unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise invalid(path, f"tensor {name!r} has a bad shape {shape!r}")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise invalid(path, f"tensor {name!r} has bad data_offsets {offsets!r}")
    begin, end = offsets
    if end - begin != math.prod(shape) * DTYPE_SIZE[dtype]:
        raise invalid(path, f"tensor {name!r}: data_offsets do not match its shape and dtype")
    return begin, end
