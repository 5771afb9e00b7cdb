"""Reports: JSON against its schema, the HTML page's structure, PDF text, the command."""

from __future__ import annotations

import json
import re
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from civitai_tui.analytics import formatting as fmt
from civitai_tui.analytics.analyzer import AnalyticsAnalyzer
from civitai_tui.analytics.collector import AnalyticsCollector
from civitai_tui.analytics.commands import report as report_command
from civitai_tui.analytics.report_json import REPORT_SCHEMA, SCHEMA_VERSION
from civitai_tui.analytics.reports import (
    ReportConfig,
    ReportGenerator,
    quick_analytics_report,
    write_dashboard,
)
from civitai_tui.analytics.summary import AnalyticsReport
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import FileCompleted, FileFailed, FileInfo

NOW = 1_790_000_000.0


def fill(db: Path, now: float = NOW) -> None:
    """7 downloads of 100 MB at 2 MB/s and 2 failures, over the last 3 days."""
    with AnalyticsCollector(db) as collector:
        for i in range(9):
            f = FileInfo(
                key=f"k{i}",
                name=f"model {i}.safetensors",
                host="b2.example",
                model_type="LORA",
                base_model="SDXL 1.0",
            )
            ts = now - 3 * 86400 + i * 28_000
            if i < 7:
                collector.record(
                    FileCompleted(
                        file=f,
                        path="/m",
                        bytes=100_000_000,
                        fetched_bytes=100_000_000,
                        sha256="0" * 64,
                        duration=50.0,
                        ts=ts,
                    )
                )
            else:
                collector.record(FileFailed(file=f, kind="network", message="reset", ts=ts))


@pytest.fixture
def report(tmp_path: Path) -> AnalyticsReport:
    db = tmp_path / "analytics.db"
    fill(db)
    return AnalyticsAnalyzer(db).analyze(NOW - 4 * 86400, NOW, utc_offset=0)


def validate(value: Any, schema: dict[str, Any], path: str = "$") -> None:
    """A small JSON Schema check: type, const, enum, required, properties, items."""
    kinds = schema.get("type")
    if kinds:
        names = kinds if isinstance(kinds, list) else [kinds]
        py = {
            "object": dict,
            "array": list,
            "string": str,
            "integer": int,
            "null": type(None),
            "number": (int, float),
        }
        assert any(isinstance(value, py[n]) and not isinstance(value, bool) for n in names), path
    if "const" in schema:
        assert value == schema["const"], path
    if "enum" in schema:
        assert value in schema["enum"], path
    for key in schema.get("required", []):
        assert key in value, f"{path}.{key} missing"
    for key, sub in schema.get("properties", {}).items():
        validate(value[key], sub, f"{path}.{key}")
    if "items" in schema:
        assert schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 10**9), path
        for i, item in enumerate(value):
            validate(item, schema["items"], f"{path}[{i}]")


def pdf_text(data: bytes) -> str:
    """The text drawn by a PDF made with core fonts: every ``(...) Tj`` string, inflated.

    fpdf2 writes core-font text as literal strings in Latin-1, so this is exactly
    what a viewer shows (no font encodings or CID maps to resolve).
    """
    parts = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            content = zlib.decompress(m.group(1))
        except zlib.error:
            continue
        for s in re.finditer(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", content):
            parts.append(re.sub(rb"\\(.)", rb"\1", s.group(1)).decode("latin-1"))
    return "\n".join(parts)


def test_json_follows_its_schema(report: AnalyticsReport) -> None:
    data = json.loads(ReportGenerator(report).json())
    validate(data, REPORT_SCHEMA)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["totals"]["completed"] == 7 and data["totals"]["failed"] == 2
    assert data["speed"]["median"] == pytest.approx(2_000_000)


def test_empty_report_is_valid_everywhere(tmp_path: Path) -> None:
    empty = AnalyticsAnalyzer(tmp_path / "none.db").analyze(NOW - 86400, NOW, utc_offset=0)
    gen = ReportGenerator(empty)
    validate(json.loads(gen.json()), REPORT_SCHEMA)
    assert "no data" in pdf_text(gen.pdf())
    assert "No notable patterns" in gen.html()


def test_html_page(report: AnalyticsReport) -> None:
    page = ReportGenerator(report).html()
    assert page.count("Plotly.newPlot") == 1 and len(page) > 3_000_000  # plotly.js inlined once
    assert "cdn.plot.ly" not in re.sub(r"<script>.*?</script>", "", page, count=1, flags=re.S)
    assert '"showSendToCloud": false' in page and '"displaylogo": false' in page
    assert "@media (max-width: 767px)" in page and "prefers-color-scheme: dark" in page
    for label, value in fmt.headline(report):
        assert label in page and value in page
    small = ReportGenerator(report, ReportConfig(include_charts=False, theme="dark")).html()
    assert len(small) < 50_000 and "<script" not in small and 'data-theme="dark"' in small


def test_html_escapes_recorded_text(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    with AnalyticsCollector(db) as collector:
        f = FileInfo(key="x", name="<img src=x onerror=alert(1)>", host="<b>h</b>")
        collector.record(FileFailed(file=f, kind="hash_mismatch", message="bad", ts=NOW - 10))
    page = ReportGenerator(AnalyticsAnalyzer(db).analyze(NOW - 100, NOW)).html()
    assert "<img src=x" not in page and "&lt;img src=x" in page and "<b>h</b>" not in page


def test_pdf_text_carries_the_headline_numbers(report: AnalyticsReport) -> None:
    data = ReportGenerator(report).pdf()
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    assert "civitai-tui download analytics" in text
    assert "77.8 %" in text  # 7 of 9
    assert "667.6 MiB" in text and "1.9 MiB/s" in text  # binary units, as everywhere
    assert "Failures by cause" in text and "network" in text and "b2.example" in text


def test_dashboard_and_quick_report(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    fill(db, now=time.time())
    paths = write_dashboard(tmp_path / "out", days=7, db_path=db)
    assert sorted(p.name for p in paths.values()) == ["report.html", "report.json", "report.pdf"]
    assert json.loads(paths["json"].read_text())["totals"]["completed"] == 7
    quick = quick_analytics_report(tmp_path / "q.pdf", days=7, db_path=db)
    assert "77.8 %" in pdf_text(quick.read_bytes())
    assert not list(tmp_path.glob("out/.*.part"))


def test_unwritable_destination_is_a_clear_error(report: AnalyticsReport, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    with pytest.raises(CivitaiTuiError, match="cannot write the report") as err:
        ReportGenerator(report).write(blocker / "r.html")
    assert err.value.kind == FailureKind.FILESYSTEM
    assert blocker.read_text() == "keep me"
    with pytest.raises(CivitaiTuiError, match="unknown report format"):
        ReportGenerator(report).write(tmp_path / "r.docx")
    assert not (tmp_path / "r.docx").exists()


def test_report_command(isolated_home: Path, tmp_path: Path) -> None:
    fill(isolated_home / "analytics.db", now=time.time())
    runner = CliRunner()
    out = tmp_path / "r.json"
    result = runner.invoke(report_command, ["--days", "7", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "7 completed, 2 failed" in result.output
    assert json.loads(out.read_text())["totals"]["failed"] == 2
    html = tmp_path / "r.html"
    result = runner.invoke(
        report_command,
        [
            "--format",
            "html",
            "--no-charts",
            "--since",
            "2000-01-01",
            "--until",
            "2100-01-01",
            "-o",
            str(html),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Downloads completed" in html.read_text()
    both = runner.invoke(report_command, ["--days", "3", "--since", "2026-01-01", "-o", str(out)])
    assert both.exit_code == 2 and "either --days or --since" in both.output
    reversed_ = runner.invoke(
        report_command, ["--since", "2026-02-01", "--until", "2026-01-01", "-o", str(out)]
    )
    assert reversed_.exit_code == 2 and "must be before" in reversed_.output
    bad = runner.invoke(report_command, ["--format", "docx", "-o", str(out)])
    assert bad.exit_code == 2


def chart_specs_in(page: str) -> dict[str, dict[str, Any]]:
    """The Plotly specs the page hands to ``Plotly.newPlot``, by chart id."""
    match = re.search(r"var specs = (\[.*?\]);\n", page, flags=re.S)
    assert match is not None
    return {spec["id"]: spec for spec in json.loads(match.group(1))}


def test_html_charts_span_the_period_and_tables_carry_medians(report: AnalyticsReport) -> None:
    page = ReportGenerator(report).html()
    throughput = chart_specs_in(page)["chart-throughput"]
    axis = throughput["layout"]["xaxis"]
    assert axis["type"] == "date"
    # The axis spans the period (in whole hours), not the milliseconds around one point.
    since, until = (fmt.timestamp(t, 0)[:16] for t in (NOW - 4 * 86400, NOW))
    assert axis["range"] == [since[:14] + "00", until[:11] + f"{int(until[11:13]) + 1:02d}:00"]
    [bars] = throughput["data"]
    assert len(bars["x"]) == len(bars["y"]) == 4 * 24 + 1  # every hour the period touches
    assert axis["range"][0] < bars["x"][0] and bars["x"][-1] < axis["range"][1]
    assert sum(bars["y"]) == pytest.approx(700e6 / 2**20, abs=0.01)  # MiB, not a mean rate
    assert throughput["title"] == "Data downloaded per hour"
    assert throughput["layout"]["yaxis"]["title"]["text"] == "MiB per hour"
    # Medians of every breakdown (2 MB/s each), never "n/a" with data present.
    tables = re.findall(r"<h3>(Model types|Base models|Hosts)</h3>(.*?)</table>", page, re.S)
    assert len(tables) == 3
    for _, table in tables:
        assert fmt.speed(2_000_000) in table and fmt.NONE not in table
    # 9 downloads over 3 days: no time patterns, and the page says what they need.
    assert "need at least 20 downloads over at least 3 days" in page
    assert "Schedule large batches" not in page
    assert '<table id="optimizer">' in page and "No decisions in this period." in page


@pytest.mark.parametrize(
    ("anonymize", "claim"),
    [
        (True, "creator names were pseudonymised before storage"),
        (False, "creator names are stored in clear (analytics.anonymize_users = false)"),
    ],
)
def test_the_privacy_footer_says_what_is_true_of_the_data(
    tmp_path: Path, anonymize: bool, claim: str
) -> None:
    from civitai_tui.analytics.settings import AnalyticsSettings

    db = tmp_path / "analytics.db"
    with AnalyticsCollector(db, AnalyticsSettings(anonymize_users=anonymize)) as collector:
        f = FileInfo(key="k", name="m.safetensors", host="h", creator="alice")
        collector.record(FileFailed(file=f, kind="network", message="reset", ts=NOW - 10))
    page = ReportGenerator(AnalyticsAnalyzer(db).analyze(NOW - 100, NOW)).html()
    assert claim in page
    assert ("pseudonymised" in page) == anonymize
