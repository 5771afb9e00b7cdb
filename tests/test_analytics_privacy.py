"""Privacy: a token planted in every event field never reaches analytics.db or a report."""

from __future__ import annotations

import re
import stat
import zlib
from pathlib import Path

import pytest
from conftest import TOKEN

from civitai_tui.analytics.analyzer import AnalyticsAnalyzer
from civitai_tui.analytics.collector import AnalyticsCollector
from civitai_tui.analytics.privacy import KEY_NAME, Scrubber, load_install_key
from civitai_tui.analytics.reports import ReportGenerator
from civitai_tui.analytics.settings import AnalyticsSettings
from civitai_tui.events import (
    Event,
    FileCompleted,
    FileFailed,
    FileInfo,
    FileProgress,
    FileStarted,
    JobStateChanged,
    NetworkConditionChanged,
    OptimizerDecision,
    RetryScheduled,
    SecurityScanFinished,
)
from civitai_tui.security.redact import register_secret

SECRET = "Plant3d-S3cret-not-hex"  # no known shape: masked because it is registered
CREATOR = "alice_the_creator"


def planted(tag: str) -> str:
    """One of the ways a token leaks into text, chosen by ``tag``."""
    forms = [
        f"https://b2.example/file.safetensors?X-Amz-Signature={TOKEN}&token={TOKEN}",
        f"Authorization: Bearer {TOKEN}",
        f"failed for key {TOKEN} ({SECRET})",
        f"civitai_api_key={TOKEN}",
        f"{SECRET} {TOKEN}",
    ]
    return f"{tag} {forms[sum(map(ord, tag)) % len(forms)]}"


def leaky_events() -> list[Event]:
    f = FileInfo(
        key=planted("key"),
        name=planted("name"),
        host=planted("host"),
        job_id=planted("job"),
        model_name=planted("model"),
        model_type=planted("type"),
        base_model=planted("base"),
        creator=CREATOR,
        size=10,
    )
    return [
        FileStarted(file=f, ts=1000.0),
        FileProgress(key=planted("key"), done=5, total=10, speed=1.0, ts=1001.0),
        RetryScheduled(
            key=planted("key"), attempt=1, delay=1.0, reason=planted("reason"), ts=1002.0
        ),
        SecurityScanFinished(
            key=planted("key"), verdict=planted("verdict"), detail=planted("detail"), ts=1003.0
        ),
        FileCompleted(
            file=f,
            path=planted("path"),
            bytes=10,
            fetched_bytes=10,
            sha256=planted("sha"),
            duration=1.0,
            connections=2,
            ts=1004.0,
        ),
        FileFailed(
            file=f,
            kind=planted("kind"),
            message=planted("message"),
            quarantined=planted("quarantine"),
            ts=1005.0,
        ),
        JobStateChanged(
            job_id=planted("job"),
            old=planted("old"),
            new=planted("new"),
            reason=planted("why"),
            ts=1006.0,
        ),
        OptimizerDecision(
            setting=planted("setting"),
            old={"url": planted("old")},
            new=[planted("new")],
            reason=planted("reason"),
            host=planted("host"),
            ts=1007.0,
        ),
        NetworkConditionChanged(old=planted("old"), new=planted("new"), ts=1008.0),
    ]


def pdf_streams(data: bytes) -> bytes:
    """The PDF with every compressed stream inflated."""
    out = [data]
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            out.append(zlib.decompress(m.group(1)))
        except zlib.error:
            out.append(m.group(1))
    return b"\n".join(out)


def assert_clean(blob: bytes, where: str) -> None:
    for secret in (TOKEN, SECRET, CREATOR):
        assert secret.encode() not in blob, f"{secret!r} leaked into {where}"


@pytest.fixture
def leaky_db(tmp_path: Path) -> Path:
    register_secret(SECRET)
    db = tmp_path / "analytics.db"
    with AnalyticsCollector(db) as collector:
        for event in leaky_events():
            collector.record(event)
    return db


def test_database_holds_no_secret(leaky_db: Path) -> None:
    files = list(leaky_db.parent.glob("analytics.db*"))
    assert files
    for path in files:
        assert_clean(path.read_bytes(), path.name)
    blob = leaky_db.read_bytes()
    assert b"***" in blob  # the masked forms are stored, so the rows are really there
    assert re.search(rb"u_[0-9a-f]{16}", blob)  # the creator's pseudonym
    assert load_install_key(leaky_db.parent) not in blob


def test_reports_hold_no_secret(leaky_db: Path, tmp_path: Path) -> None:
    report = AnalyticsAnalyzer(leaky_db).analyze(0, 2000, utc_offset=0)
    assert report.totals.completed == 1 and report.totals.failed == 1
    gen = ReportGenerator(report)
    for fmt in ("html", "json", "pdf"):
        data = gen.write(tmp_path / f"r.{fmt}").read_bytes()
        assert_clean(pdf_streams(data) if fmt == "pdf" else data, fmt)


def test_install_key_is_private_and_pseudonyms_stable(tmp_path: Path) -> None:
    key = load_install_key(tmp_path)
    path = tmp_path / KEY_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 32 and load_install_key(tmp_path) == key
    same = Scrubber(key)
    assert same.user("alice") == Scrubber(key).user("alice") != same.user("bob")
    assert same.user("alice") != Scrubber(b"k" * 32).user("alice")  # deleting the key unlinks
    path.write_bytes(b"short")
    with pytest.raises(Exception, match="damaged"):
        load_install_key(tmp_path)


def test_names_kept_when_anonymisation_is_off(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    f = FileInfo(key="v1/f1", name="m.safetensors", creator=CREATOR)
    with AnalyticsCollector(db, AnalyticsSettings(anonymize_users=False)) as collector:
        collector.record(FileStarted(file=f))
    assert CREATOR.encode() in db.read_bytes()
    assert not (tmp_path / KEY_NAME).exists()
