"""Plain-text cell formats for the TUI: ETAs and text progress bars.

Sizes and speeds are :mod:`civitai_tui.units` (shared with the engine and the CLI).
"""

from __future__ import annotations

BAR_WIDTH = 10


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
