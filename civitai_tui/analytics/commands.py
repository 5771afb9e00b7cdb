"""The ``civitai-tui report`` command: analytics.db to an HTML, JSON or PDF file."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import click

from civitai_tui.analytics import formatting as fmt
from civitai_tui.analytics.report_format import ReportFormat
from civitai_tui.analytics.schema import DB_NAME
from civitai_tui.config import state_dir
from civitai_tui.errors import CivitaiTuiError

DEFAULT_DAYS = 30
_DATE = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"])


@click.command("report")
@click.option(
    "--format", "fmt_name", type=click.Choice([f.value for f in ReportFormat]), default=None,
    help="Report format (default: from the output file's suffix, else html).",
)  # fmt: skip
@click.option(
    "--days", type=click.IntRange(min=1), help=f"The last N days (default {DEFAULT_DAYS})."
)
@click.option("--since", type=_DATE, help="Start date (local time), e.g. 2026-11-01.")
@click.option("--until", type=_DATE, help="End date (local time, a date includes that whole day).")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="The file to write.",
)  # fmt: skip
@click.option("--no-charts", is_flag=True, help="HTML without charts (small and fast).")
@click.option("--theme", type=click.Choice(["auto", "light", "dark"]), default="auto")
def report(
    fmt_name: str | None,
    days: int | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    output: Path,
    no_charts: bool,
    theme: str,
) -> None:
    """Write an analytics report of recorded downloads."""
    start, end = _period(days, since, until)
    # The analyzer and the report writers (fpdf, jinja2, plotly) load only when used.
    from civitai_tui.analytics.analyzer import AnalyticsAnalyzer
    from civitai_tui.analytics.reports import ReportConfig, ReportGenerator

    db_path = state_dir() / DB_NAME
    report_format = ReportFormat.parse(fmt_name or output.suffix or "html")
    try:
        analysed = AnalyticsAnalyzer(db_path).analyze(start, end)
        config = ReportConfig(include_charts=not no_charts, theme=theme)
        ReportGenerator(analysed, config).write(output, report_format)
    except CivitaiTuiError as exc:
        raise click.ClickException(str(exc)) from exc
    t = analysed.totals
    click.echo(
        f"wrote {output} ({report_format.value}): {t.completed:,} completed, {t.failed:,} failed, "
        f"success {fmt.pct(t.success_rate)}, {fmt.size(t.bytes)}",
        err=True,
    )


def _period(
    days: int | None, since: dt.datetime | None, until: dt.datetime | None
) -> tuple[float, float]:
    if days is not None and (since or until):
        raise click.UsageError("use either --days or --since/--until, not both")
    now = time.time()
    if since is None and until is None:
        return now - (days or DEFAULT_DAYS) * 86400.0, now
    end = _end_of(until) if until else now
    start = since.timestamp() if since else end - DEFAULT_DAYS * 86400.0
    if start >= end:
        raise click.UsageError(f"--since ({since}) must be before --until ({until})")
    return start, end


def _end_of(value: dt.datetime) -> float:
    """A bare date means the end of that day; a time means that moment."""
    if value.time() == dt.time(0, 0):
        return (value + dt.timedelta(days=1)).timestamp()
    return value.timestamp()
