"""Human-readable numbers for the HTML and PDF reports (binary units, "n/a" for none)."""

from __future__ import annotations

import datetime as dt

from civitai_tui.analytics.summary import AnalyticsReport, Period
from civitai_tui.units import human_bytes

NONE = "n/a"


def size(n: float | None) -> str:
    """Binary units (KiB, MiB, GiB), as everywhere in civitai-tui (:mod:`civitai_tui.units`)."""
    return NONE if n is None else human_bytes(n)


def speed(bps: float | None) -> str:
    return NONE if bps is None else f"{size(bps)}/s"


def pct(ratio: float | None) -> str:
    return NONE if ratio is None else f"{ratio * 100:.1f} %"


def change(change_pct: float | None) -> str:
    return NONE if change_pct is None else f"{change_pct:+.1f} %"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} m"
    return f"{minutes} m {secs:02d} s" if minutes else f"{secs} s"


def timestamp(ts: float, utc_offset: int) -> str:
    """``ts`` in the period's clock, e.g. ``2026-11-28 14:05 (UTC+01:00)``."""
    zone = dt.timezone(dt.timedelta(seconds=utc_offset))
    return dt.datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M (UTC%z)")


def period(p: Period) -> str:
    return f"{timestamp(p.since, p.utc_offset)} to {timestamp(p.until, p.utc_offset)}"


def headline(report: AnalyticsReport) -> list[tuple[str, str]]:
    """The metric cards: (label, value), the same in every format."""
    t, s = report.totals, report.speed
    return [
        ("Downloads completed", f"{t.completed:,}"),
        ("Downloads failed", f"{t.failed:,}"),
        ("Success rate", pct(t.success_rate)),
        ("Data downloaded", size(t.bytes)),
        ("Median speed", speed(s.median)),
        ("95th percentile speed", speed(s.p95)),
        ("Mean duration", duration(t.mean_duration)),
        ("Retries", f"{t.retries:,}"),
    ]
