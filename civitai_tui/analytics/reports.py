"""Report generation: one analysed period to HTML, JSON or PDF files.

:class:`ReportGenerator` renders an :class:`AnalyticsReport` in each format and
writes files atomically (a temporary file in the same directory, then
``os.replace``), so a half-written report never sits at the final path.
:func:`quick_analytics_report` analyses and writes in one call;
:func:`write_dashboard` writes all three formats side by side.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from civitai_tui.analytics.analyzer import AnalyticsAnalyzer
from civitai_tui.analytics.report_format import ReportFormat
from civitai_tui.analytics.report_html import render_html
from civitai_tui.analytics.report_json import render_json
from civitai_tui.analytics.report_pdf import render_pdf
from civitai_tui.analytics.summary import AnalyticsReport
from civitai_tui.atomic import write_atomic
from civitai_tui.errors import CivitaiTuiError, FailureKind


@dataclass(frozen=True, slots=True)
class ReportConfig:
    """How reports look."""

    title: str = "civitai-tui download analytics"
    include_charts: bool = True  # HTML: False gives a small, fast page without plotly.js
    theme: str = "auto"  # HTML: "auto" (follows the system), "light" or "dark"
    max_table_rows: int = 15

    def __post_init__(self) -> None:
        if self.theme not in ("auto", "light", "dark"):
            raise CivitaiTuiError(
                FailureKind.BAD_TARGET,
                f"unknown report theme {self.theme!r}; choose auto, light or dark",
            )


class ReportGenerator:
    """Renders one analysed period in every report format."""

    def __init__(self, report: AnalyticsReport, config: ReportConfig | None = None) -> None:
        self.report = report
        self.config = config or ReportConfig()

    def html(self) -> str:
        c = self.config
        return render_html(
            self.report,
            title=c.title,
            theme=c.theme,
            include_charts=c.include_charts,
            max_rows=c.max_table_rows,
        )

    def json(self) -> str:
        return render_json(self.report)

    def pdf(self) -> bytes:
        return render_pdf(self.report, title=self.config.title, max_rows=self.config.max_table_rows)

    def render(self, fmt: ReportFormat | str) -> bytes:
        match ReportFormat.parse(fmt):
            case ReportFormat.HTML:
                return self.html().encode()
            case ReportFormat.JSON:
                return self.json().encode()
            case ReportFormat.PDF:
                return self.pdf()

    def write(self, path: Path, fmt: ReportFormat | str | None = None) -> Path:
        """Write the report to ``path`` (format from the suffix unless given)."""
        data = self.render(fmt or path.suffix or "html")
        write_report_file(path, data)
        return path


def write_report_file(path: Path, data: bytes) -> None:
    """``data`` at ``path``, all or nothing; failures say what to do."""
    path = path.expanduser()
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise _write_error(path, exc) from exc


def _write_error(path: Path, exc: OSError) -> CivitaiTuiError:
    if exc.errno == errno.ENOSPC:
        return CivitaiTuiError(
            FailureKind.DISK_FULL, f"no space left to write {path}; free some space and retry"
        )
    return CivitaiTuiError(
        FailureKind.FILESYSTEM,
        f"cannot write the report to {path}: {exc.strerror or exc}; choose another path with -o",
    )


def quick_analytics_report(
    output: Path,
    *,
    days: int = 7,
    fmt: ReportFormat | str | None = None,
    db_path: Path | None = None,
    config: ReportConfig | None = None,
) -> Path:
    """Analyse the last ``days`` days and write one report to ``output``."""
    report = AnalyticsAnalyzer(db_path).analyze_days(days)
    return ReportGenerator(report, config).write(output, fmt)


def write_dashboard(
    out_dir: Path,
    *,
    days: int = 30,
    db_path: Path | None = None,
    config: ReportConfig | None = None,
) -> dict[ReportFormat, Path]:
    """Analyse once and write ``report.html``, ``report.json`` and ``report.pdf``."""
    generator = ReportGenerator(AnalyticsAnalyzer(db_path).analyze_days(days), config)
    return {f: generator.write(out_dir / f"report.{f.value}", f) for f in ReportFormat}
