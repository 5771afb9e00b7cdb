"""Byte and speed units: one convention for the engine's messages, the CLI, the reports and the UI.

Everything shown is binary: sizes in ``KiB`` (1024 bytes), ``MiB``, ``GiB``, ``TiB``
and speeds in ``KiB/s``, ``MiB/s``, ``GiB/s`` (as ``ls -h``, ``du -h``, aria2 and
curl count), so a size and a speed, or a limit and a download running at it,
always read in the same unit. Typed values may use either convention
(:func:`civitai_tui.download.speed.parse_speed`: ``20MB`` = 20,000,000 B/s,
``20MiB`` = 20 x 2^20 B/s); a limit typed in decimal shows in binary
(``20MB`` -> ``19.1 MiB/s``).
"""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def _binary(n: float, digits: str) -> str:
    value = float(n)
    for unit in UNITS:
        if abs(value) < 1024 or unit == UNITS[-1]:
            text = f"{value:{digits}}"
            if unit == "B" or "e" in text:  # 1000-1023 of a unit: no 1e+03
                text = f"{value:.0f}"
            return f"{text} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_bytes(n: float | None) -> str:
    """``1536`` -> ``"1.5 KiB"``; None -> ``"?"``."""
    return "?" if n is None else _binary(n, ".1f")


def human_speed(bytes_per_s: float) -> str:
    """A transfer rate (``"48.0 MiB/s"``), or an empty cell when nothing moves."""
    return f"{_binary(bytes_per_s, '.1f')}/s" if bytes_per_s > 0 else ""


def format_speed(rate: int) -> str:
    """A speed limit to 3 digits (``"20 MiB/s"``), or ``unlimited`` for 0."""
    return f"{_binary(rate, '.3g')}/s" if rate > 0 else "unlimited"
