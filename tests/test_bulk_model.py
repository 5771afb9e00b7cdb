"""Jobs, the state machine, the priority queue and state.db, without the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from civitai_tui.bulk.jobs import BulkDownloadJob, FileState, JobFile, JobOptions
from civitai_tui.bulk.queue import JobQueue
from civitai_tui.bulk.states import TRANSITIONS, IllegalTransition, JobState
from civitai_tui.bulk.store import JobStore
from civitai_tui.download.request import CivitAISourceRef, DownloadRequest
from civitai_tui.errors import FailureKind
from civitai_tui.events import FileInfo

S = JobState


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.PENDING, S.PROCESSING),
        (S.PROCESSING, S.PAUSED),
        (S.PAUSED, S.PROCESSING),
        (S.PROCESSING, S.COMPLETED),
        (S.PROCESSING, S.FAILED),
        (S.PROCESSING, S.CANCELLED),
        (S.PAUSED, S.CANCELLED),
        (S.FAILED, S.PENDING),
        (S.CANCELLED, S.PENDING),
        (S.COMPLETED, S.PENDING),
        (S.PENDING, S.PAUSED),
        (S.PENDING, S.CANCELLED),
    ],
)
def test_legal_transitions(old: JobState, new: JobState) -> None:
    job = BulkDownloadJob(name="j", targets=("model:1",), state=old)
    assert job.transition(new) is old
    assert job.state is new
    assert (job.finished_at is not None) == new.finished


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.PENDING, S.COMPLETED),
        (S.COMPLETED, S.CANCELLED),
        (S.PAUSED, S.COMPLETED),
        (S.FAILED, S.PROCESSING),
    ],
)
def test_illegal_transitions_raise_a_clear_error(old: JobState, new: JobState) -> None:
    job = BulkDownloadJob(name="j", targets=("model:1",), state=old)
    with pytest.raises(IllegalTransition) as err:
        job.transition(new)
    assert job.state is old
    assert err.value.kind is FailureKind.INVALID_STATE
    assert f"is {old}; it cannot become {new}" in str(err.value)


def test_every_state_has_a_rule() -> None:
    assert set(TRANSITIONS) == set(JobState)


def test_queue_orders_by_priority_then_fifo_and_reprioritizes() -> None:
    q = JobQueue()
    for job_id, prio in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", 1)]:
        q.push(job_id, prio)
    assert q.ordered() == ["b", "d", "e", "a", "c"]
    assert q.reprioritize("c", 9)
    assert not q.reprioritize("zz", 1)
    assert q.remove("d") and not q.remove("d")
    assert q.peek() == "c"
    assert [q.pop() for _ in range(5)] == ["c", "b", "e", "a", None]
    assert len(q) == 0 and "a" not in q


def test_queue_keeps_arrival_order_when_priority_returns() -> None:
    q = JobQueue()
    q.push("first", 0)
    q.push("second", 0)
    q.reprioritize("first", 3)
    q.reprioritize("first", 0)
    assert q.ordered() == ["first", "second"]


def _file(key: str, size: int, state: FileState = FileState.PENDING, done: int = 0) -> JobFile:
    request = DownloadRequest(
        info=FileInfo(key=key, name=f"{key}.safetensors", size=size, model_type="LORA"),
        source=CivitAISourceRef(1, 2),
        dest_dir=Path("/models"),
        sha256="AB" * 32,
        remote_scans=("Success",),
    )
    return JobFile(request, state=state, done=done)


def test_job_progress_and_failure_summary() -> None:
    failed = _file("c", 10, FileState.FAILED, 3)
    failed.error_kind, failed.error, failed.attempts, failed.last_status = (
        "hash_mismatch",
        "SHA256 differs",
        2,
        200,
    )
    job = BulkDownloadJob(
        name="j",
        targets=("model:1",),
        files=[_file("a", 100, FileState.COMPLETED, 100), _file("b", 50, done=20), failed],
    )
    assert job.total_bytes == 160 and job.done_bytes == 123
    assert job.files_done == 1 and job.failures == [failed]
    assert "c.safetensors: hash_mismatch HTTP 200 after 2 attempt(s): SHA256 differs" in (
        job.failure_summary()
    )
    assert job.summary()["files_failed"] == 1


def test_store_round_trip_and_updates(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = JobStore(path)
    job = BulkDownloadJob(
        name="creator alice",
        targets=("user:alice",),
        options=JobOptions(dest="/m", types=("LORA",), limit=5),
        priority=3,
        seq=store.next_seq(),
        files=[_file("a", 100), _file("b", 200)],
    )
    job.expanded = True
    store.save_job(job)
    job.files[0].state, job.files[0].done = FileState.COMPLETED, 100
    job.transition(JobState.PROCESSING)
    store.save_job(job, with_files=False)
    store.save_files(job.id, job.files[:1])
    store.close()

    again = JobStore(path)
    (loaded,) = again.load_jobs()
    assert loaded.id == job.id and loaded.state is JobState.PROCESSING
    assert loaded.options == job.options and loaded.priority == 3 and loaded.expanded
    assert [f.key for f in loaded.files] == ["a", "b"]
    assert loaded.files[0].state is FileState.COMPLETED and loaded.files[0].done == 100
    assert loaded.files[1].info == job.files[1].info
    assert again.next_seq() == job.seq + 1
    again.delete_job(job.id)
    assert again.load_jobs() == []
    again.close()
