"""A file's record is one value: what to fetch (the planned request) and how far along.

``state.db`` files of earlier versions open with their jobs; every attribute is
saved without the store naming it; the downloader gets the request as planned.

The old schemas below are frozen copies of what earlier versions wrote (real
SQLite files, rows inserted as those versions inserted them): they must never
follow the current schema.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import MISSING, fields, replace
from pathlib import Path

import pytest

from civitai_tui.bulk.jobs import BulkDownloadJob, FileState, JobFile, JobOptions
from civitai_tui.bulk.manager import BulkDownloadManager, ManagerSettings
from civitai_tui.bulk.states import JobState
from civitai_tui.bulk.store import SCHEMA_VERSION, JobStore
from civitai_tui.download.request import CivitAISourceRef, DirectSource, DownloadRequest
from civitai_tui.events import FileInfo
from civitai_tui.simulator.server import Simulator
from tests.helpers import TOKEN
from tests.test_civitai_client import small_plain_model

#: ``files`` as schema version 2 declared it (version 1: without the last three columns).
_V2_FILES = """
CREATE TABLE files (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    ord INTEGER NOT NULL,
    info TEXT NOT NULL,
    dest_dir TEXT NOT NULL,
    source TEXT NOT NULL,
    filename TEXT,
    sha256 TEXT,
    blake3 TEXT,
    remote_scans TEXT NOT NULL,
    file_format TEXT,
    preview_url TEXT,
    state TEXT NOT NULL,
    done INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    last_status INTEGER,
    error_kind TEXT,
    error TEXT,
    path TEXT,
    origin TEXT,
    method TEXT,
    warning TEXT,
    PRIMARY KEY (job_id, key)
);
CREATE INDEX files_sha256 ON files(sha256);
"""
_V2_JOBS = """
CREATE TABLE jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, name TEXT NOT NULL,
    targets TEXT NOT NULL, options TEXT NOT NULL, priority INTEGER NOT NULL, state TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL,
    expanded INTEGER NOT NULL DEFAULT 0, error TEXT);
CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL NOT NULL);
"""
_CIVITAI_INFO = {
    "key": "job1:civitai:22",
    "name": "lora.safetensors",
    "size": 1000,
    "host": "civitai.com",
    "job_id": "job1",
    "model_id": 7,
    "version_id": 11,
    "file_id": 22,
    "model_name": "A LoRA",
    "version_name": "v1",
    "model_type": "LORA",
    "base_model": "SDXL 1.0",
    "creator": "alice",
}
_URL_INFO = {
    **{k: None for k in ("size", "job_id", "model_id", "version_id", "file_id")},
    **{k: "" for k in ("model_name", "version_name", "model_type", "base_model", "creator")},
    "key": "job1:url:0123456789abcdef",
    "name": "file.bin",
    "host": "files.example",
}


def _old_db(path: Path, version: int) -> None:
    """A state.db as version ``version`` (1 or 2) left it: one job, a CivitAI and a URL file."""
    files = _V2_FILES
    if version == 1:
        files = files.replace("    origin TEXT,\n    method TEXT,\n    warning TEXT,\n", "")
    with sqlite3.connect(path) as db:
        db.executescript(_V2_JOBS + files)
        job = {"id": "job1", "seq": 1, "name": "A LoRA", "targets": '["model:7"]'}
        job |= {"options": '{"dest": "/lib"}', "priority": 2, "state": "PAUSED"}
        job |= {"created_at": 1.0, "started_at": 2.0, "finished_at": None, "expanded": 1}
        lora = {"job_id": "job1", "key": "job1:civitai:22", "ord": 0, "dest_dir": "/lib/LORA"}
        lora |= {"info": json.dumps(_CIVITAI_INFO), "filename": "lora.safetensors"}
        lora |= {"source": json.dumps({"kind": "civitai", "version_id": 11, "file_id": 22})}
        lora |= {"sha256": "AB" * 32, "blake3": "CD" * 32, "file_format": "SafeTensor"}
        lora |= {"remote_scans": '["Success", "Success"]'}
        lora |= {"preview_url": "https://img.example/1.jpeg", "state": "downloading"}
        lora |= {"done": 400, "attempts": 2, "last_status": 503, "error_kind": "server"}
        lora |= {"error": "HTTP 503"}
        url = {"job_id": "job1", "key": "job1:url:0123456789abcdef", "ord": 1, "dest_dir": "/lib"}
        url |= {"info": json.dumps(_URL_INFO), "remote_scans": "[]", "path": "/lib/file.bin"}
        url |= {"source": '{"kind": "url", "url": "https://files.example/file.bin?token=***"}'}
        url |= {"state": "completed", "done": 77, "attempts": 1}
        if version == 2:
            lora |= {"origin": "/elsewhere/lora.safetensors", "warning": "sidecar not written"}
            url |= {"method": "download"}
        for table, row in (("jobs", job), ("files", lora), ("files", url)):
            names = ", ".join(row)
            db.execute(f"INSERT INTO {table} ({names}) VALUES (:{names.replace(', ', ', :')})", row)
        db.execute(f"PRAGMA user_version={version}")


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_state_db_opens_and_keeps_its_jobs_and_files(tmp_path: Path, version: int) -> None:
    path = tmp_path / "state.db"
    _old_db(path, version)

    store = JobStore(path)
    (job,) = store.load_jobs()
    assert (job.id, job.name, job.state, job.priority, job.expanded) == (
        "job1",
        "A LoRA",
        JobState.PAUSED,
        2,
        True,
    )
    lora, url = job.files
    assert lora.request == DownloadRequest(
        info=FileInfo(**_CIVITAI_INFO),
        source=CivitAISourceRef(11, 22),
        dest_dir=Path("/lib/LORA"),
        filename="lora.safetensors",
        expected_size=1000,
        sha256="AB" * 32,
        blake3="CD" * 32,
        remote_scans=("Success", "Success"),
        file_format="SafeTensor",
        preview_url="https://img.example/1.jpeg",
    )
    assert (lora.state, lora.done, lora.attempts, lora.last_status) == (
        FileState.DOWNLOADING,
        400,
        2,
        503,
    )
    assert (lora.error_kind, lora.error, lora.path) == ("server", "HTTP 503", None)
    assert url.request == DownloadRequest(
        info=FileInfo(**_URL_INFO),
        source=DirectSource("https://files.example/file.bin?token=***"),
        dest_dir=Path("/lib"),
    )
    assert (url.state, url.done, url.path) == (FileState.COMPLETED, 77, "/lib/file.bin")
    if version == 2:
        assert (lora.origin, lora.warning) == ("/elsewhere/lora.safetensors", "sidecar not written")
        assert url.method == "download"
    else:
        assert (lora.origin, lora.method, lora.warning, url.method) == (None,) * 4

    lora.state, lora.done, lora.method = FileState.COMPLETED, 1000, "hardlink"
    store.save_files(job.id, [lora])
    store.close()
    (again,) = JobStore(path).load_jobs()
    assert again.files[0] == lora and again.files[1] == url
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = [row[1] for row in db.execute("PRAGMA table_info(files)")]
    assert columns == ["job_id", "key", "ord", "request", "progress"]


def test_a_state_db_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer civitai-tui"):
        JobStore(path)


def _sample(annotation: str, name: str) -> object:
    """A value for an attribute that is not its default (per its declared type)."""
    match annotation:
        case "str" | "str | None":
            return f"{name}-value"
        case "int" | "int | None":
            return len(name) + 7
        case "Path":
            return Path("/lib") / name
        case "tuple[str, ...]":
            return (name, "other")
        case "FileState":
            return FileState.FAILED
        case "Source":
            return CivitAISourceRef(5, 6)
        case "FileInfo":
            return FileInfo(**{f.name: _sample(str(f.type), f.name) for f in fields(FileInfo)})
    raise AssertionError(f"{name}: add a sample value for {annotation!r} here")


def test_every_attribute_of_a_file_survives_the_store(tmp_path: Path) -> None:
    """No attribute is listed by the store: whatever DownloadRequest or JobFile declares
    (a new one too) is saved and read back, with no other edit (``waiting``, worked out
    when asked, is the one attribute never saved: it reads back as None)."""
    request = DownloadRequest(
        **{f.name: _sample(str(f.type), f.name) for f in fields(DownloadRequest)}
    )
    progress = {
        f.name: _sample(str(f.type), f.name) for f in fields(JobFile) if f.name != "request"
    }
    file = JobFile(request, **progress)  # type: ignore[arg-type]
    for f in fields(JobFile):
        assert f.default is MISSING or getattr(file, f.name) != f.default, f.name
    store = JobStore(tmp_path / "state.db")
    store.save_job(BulkDownloadJob(name="j", targets=(), id=request.info.job_id, files=[file]))
    store.close()
    (job,) = JobStore(tmp_path / "state.db").load_jobs()
    assert job.files == [replace(file, waiting=None)]


def test_a_direct_url_is_stored_without_its_secrets(tmp_path: Path) -> None:
    request = DownloadRequest(
        info=FileInfo(key="k", name="m.bin"),
        source=DirectSource("https://files.example/m.bin?token=s3cr3t&x=1"),
        dest_dir=tmp_path,
    )
    store = JobStore(tmp_path / "state.db")
    store.save_job(BulkDownloadJob(name="j", targets=(), files=[JobFile(request)]))
    store.close()
    assert b"s3cr3t" not in b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    (job,) = JobStore(tmp_path / "state.db").load_jobs()
    assert job.files[0].request.source == DirectSource("https://files.example/m.bin?token=***&x=1")


async def test_the_downloader_gets_the_request_as_planned_preview_and_all(
    sim: Simulator, tmp_path: Path
) -> None:
    """The manager used to rebuild the request field by field and dropped ``preview_url``."""
    model = small_plain_model(sim)
    settings = ManagerSettings(
        state_dir=tmp_path / "state",
        base_url=sim.api_url,
        api_key=TOKEN,
        allow_http=True,
        preview_nsfw_level=31,
    )
    settings.state_dir.mkdir()
    manager = BulkDownloadManager(settings)
    await manager.start()
    try:
        downloader = manager.downloader
        assert downloader is not None
        handed: list[DownloadRequest] = []
        download = downloader.download

        async def spy(request: DownloadRequest) -> object:
            handed.append(request)
            return await download(request)

        downloader.download = spy  # type: ignore[method-assign]
        job = await manager.add_job(
            [f"model:{model.id}"], options=JobOptions(dest=str(tmp_path / "lib"))
        )
        assert await manager.wait([job.id], timeout=60), job.failure_summary()
    finally:
        await manager.stop()
    (file,) = job.files
    assert handed == [file.request]
    assert file.request.preview_url is not None and file.request.preview_url.startswith("http")
    assert file.request.source == CivitAISourceRef(model.versions[0].id, file.info.file_id)
