"""Why a queued job or file waits: the rules on plain job records (the engine test
``tests/test_engine_waiting.py`` shows them through ``ls --json`` of a real engine)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from civitai_tui.bulk.jobs import BulkDownloadJob, FileState, JobFile
from civitai_tui.bulk.states import JobState
from civitai_tui.bulk.waiting import NO_TOKEN, SchedulerView, explain
from civitai_tui.download.request import DirectSource, DownloadRequest
from civitai_tui.events import FileInfo

BUSY = SchedulerView(
    slots=2, running=2, pausing=0, pause=0.0, sequential=False, writing={}, held={}, token=True
)


def job(name: str, *states: FileState, priority: int = 0, expanded: bool = True) -> BulkDownloadJob:
    made = BulkDownloadJob(name=name, targets=(f"model:{name}",), priority=priority)
    made.expanded = expanded
    made.files = [
        JobFile(
            DownloadRequest(
                FileInfo(key=f"{made.id}:{i}", name=f"{name}{i}"),
                DirectSource(f"https://example.invalid/{name}{i}"),
                Path("/lib"),
                f"{name}{i}",
            )
        )
        for i in range(len(states))
    ]
    for f, state in zip(made.files, states, strict=True):
        f.state = state
    if any(s is not FileState.PENDING for s in states):
        made.state = JobState.PROCESSING
    return made


def test_a_queued_job_waits_for_a_slot_behind_the_jobs_ahead() -> None:
    first = job("a", FileState.DOWNLOADING, FileState.PENDING, priority=2)
    second = job("b", FileState.PENDING, priority=1)
    third = job("c", FileState.PENDING)
    explain([first, second, third], BUSY)
    assert first.waiting is None  # moving
    assert first.files[1].waiting == "all 2 batch slot(s) busy (bulk.concurrent_batches)"
    assert second.waiting == (
        "all 2 batch slot(s) busy (bulk.concurrent_batches); 1 job(s) ahead in the queue, "
        "1 of higher priority"
    )
    assert third.waiting is not None and "2 job(s) ahead in the queue, 2 of higher" in third.waiting
    assert third.files[0].view()["reason"] == third.files[0].waiting
    assert third.summary()["waiting"] == third.waiting
    assert "waiting" not in third.files[0].progress_record()  # worked out, never stored


def test_batch_pause_sequential_and_a_free_slot_are_told_apart() -> None:
    pending = job("a", FileState.PENDING)
    explain([pending], replace(BUSY, pausing=1, pause=30.0))
    assert pending.waiting == "batch pause: 30 s between batches (bulk.pause_between_batches)"
    explain([pending], replace(BUSY, slots=1, running=1, sequential=True))
    assert pending.waiting == "all 1 batch slot(s) busy (bulk.strategy = sequential)"
    explain([pending], replace(BUSY, running=1))
    assert pending.waiting == "starting (a batch slot is free)"


def test_a_file_whose_path_another_job_writes_waits_for_it() -> None:
    writer = job("a", FileState.DOWNLOADING)
    copy = job("a", FileState.PENDING)  # the same model into the same folder
    explain([writer, copy], replace(BUSY, running=1, writing={"/lib/a0": writer.id}))
    writing = f"waiting for job {writer.id}: it is writing the same file (/lib/a0)"
    assert copy.files[0].waiting == writing
    assert copy.waiting is not None and copy.waiting.startswith(f"waiting for job {writer.id}")


def test_a_file_held_by_the_host_budget_says_so_and_so_does_its_job() -> None:
    running = job("a", FileState.DOWNLOADING, FileState.DOWNLOADING)
    held = "waiting for a connection to 127.0.0.1: its 2 allowed connections are in use"
    explain([running], replace(BUSY, held={running.files[1].key: held}))
    assert running.files[1].waiting == held and running.waiting is None  # one file moves
    explain([running], replace(BUSY, held={f.key: held for f in running.files}))
    assert running.waiting == held


def test_finding_files_holds_the_jobs_behind_and_no_token_is_said() -> None:
    finding = job("a", expanded=False)
    behind = job("b", FileState.PENDING)
    explain([finding, behind], replace(BUSY, running=0, token=False))
    assert finding.waiting == f"finding its files (asking CivitAI); {NO_TOKEN}"
    assert behind.waiting == (
        f"waiting for job {finding.id} ahead in the queue to find its files; {NO_TOKEN}"
    )


def test_paused_and_finished_jobs_wait_for_nothing() -> None:
    paused = job("a", FileState.PENDING)
    paused.state = JobState.PAUSED
    done = job("b", FileState.COMPLETED)
    explain([paused, done], BUSY)
    assert paused.waiting is None and done.waiting is None
