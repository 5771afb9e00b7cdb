"""Plain-text cell formats for the TUI: sizes, speeds, ETAs and text progress bars."""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
BAR_WIDTH = 10


def human_bytes(n: float | None) -> str:
    """``1536`` -> ``"1.5 KiB"``; None -> ``"?"``."""
    if n is None:
        return "?"
    value = float(n)
    for unit in UNITS:
        if abs(value) < 1024 or unit == UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_speed(bytes_per_s: float) -> str:
    """A transfer rate, or an empty cell when nothing moves."""
    return f"{human_bytes(bytes_per_s)}/s" if bytes_per_s > 0 else ""


def human_eta(remaining: int, bytes_per_s: float) -> str:
    """``h:mm:ss`` until ``remaining`` bytes arrive at ``bytes_per_s``; empty when unknown."""
    if bytes_per_s <= 0 or remaining <= 0:
        return ""
    seconds = int(remaining / bytes_per_s)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours < 100 else ">99h"


def text_bar(done: int, total: int | None, width: int = BAR_WIDTH) -> str:
    """``"█████░░░░░  52%"``; an unknown total gives a bar of dots."""
    if not total:
        return "·" * width + "    "
    fraction = min(max(done / total, 0.0), 1.0)
    filled = int(fraction * width)
    return "█" * filled + "░" * (width - filled) + f" {int(fraction * 100):3d}%"
