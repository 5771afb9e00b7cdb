"""The UI's link to its engine: an engine that stops ends the UI with status 1."""

from __future__ import annotations

from typing import Any

import pytest

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
from civitai_tui.tui.bridge import apply_message
from civitai_tui.tui.state import EngineState, JobView
from tests.tui.conftest import SIZE, Live, until


async def test_the_ui_leaves_with_engine_stopped_when_the_engine_stops(live: Live) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        live.engine.request_stop()
        await until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 1
    assert app.state.connection == "engine stopped"


def test_a_state_save_failure_shows_until_the_engine_saves_again() -> None:
    from civitai_tui.tui.bridge import apply_message
    from civitai_tui.tui.state import EngineState

    state = EngineState()
    apply_message(state, {"type": "snapshot", "jobs": [], "store_error": "disk is full"})
    assert state.store_error == "disk is full"
    apply_message(
        state,
        {
            "type": "events",
            "events": [{"type": "state_save_failed", "message": "", "recovered": True}],
        },
    )
    assert state.store_error is None
    apply_message(
        state,
        {"type": "events", "events": [{"type": "state_save_failed", "message": "full again"}]},
    )
    assert state.store_error == "full again"


async def test_an_event_that_does_not_match_its_class_stops_the_link_and_says_why() -> None:
    """A renamed field (engine and UI of different versions) is never read as a default."""
    from collections.abc import AsyncIterator

    from civitai_tui.tui.bridge import EngineBridge
    from civitai_tui.tui.state import EngineState

    class Renamed:
        async def events(self) -> AsyncIterator[dict[str, Any]]:
            yield {"type": "snapshot", "jobs": [], "store_error": None}
            event = {"type": "file_progress", "key": "j:f", "done_bytes": 5, "total": 9}
            yield {"type": "events", "events": [{**event, "speed": 1.0}]}
            raise AssertionError("the bridge read on after a malformed event")

    state = EngineState()
    await EngineBridge(Renamed(), state).follow_events()  # type: ignore[arg-type]
    assert not state.connected
    assert state.connection.startswith(
        "file_progress event does not match this version: missing done; unknown done_bytes"
    )


def summary(job_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "name": job_id, "state": "PROCESSING", "targets": ["model:1"], **extra}


def state_with(*job_ids: str) -> EngineState:
    state = EngineState()
    state.apply_summaries([summary(j) for j in job_ids])
    state.take_dirty()
    return state


def feed(state: EngineState, *events: Event) -> None:
    apply_message(state, {"type": "events", "events": [e.to_dict() for e in events]})


def info(key: str, **extra: Any) -> FileInfo:
    return FileInfo(key=key, name=key.rsplit(":", 1)[-1], size=100, **extra)


@pytest.mark.parametrize(
    ("kind", "verification", "scan"),
    [
        ("hash_mismatch", "hash mismatch", ""),
        ("size_mismatch", "size mismatch", ""),
        ("invalid_format", "invalid format", ""),
        ("unsafe", "", "dangerous"),
        ("network", "", ""),
    ],
)
def test_a_failed_file_shows_its_reason_and_counts_once(
    kind: str, verification: str, scan: str
) -> None:
    state = state_with("j1")
    failed = FileFailed(file=info("j1:f1"), kind=kind, message="it broke", attempts=3)
    feed(state, failed, failed)  # a repeat does not count the failure twice
    job = state.jobs["j1"]
    view = job.files["j1:f1"]
    assert job.files_failed == 1
    assert (view.state, view.speed, view.attempts) == ("failed", 0.0, 3)
    assert view.error == f"{kind}: it broke"
    assert (view.verification, view.scan) == (verification, scan)
    assert state.take_dirty() == ({"j1"}, False)


def test_events_for_unknown_jobs_are_ignored() -> None:
    state = state_with("j1")
    feed(
        state,
        FileStarted(file=info("zz:f")),
        FileProgress(key="zz:f", done=5, total=10, speed=1.0),
        FileCompleted(
            file=info("zz:f"), path="/x", bytes=10, fetched_bytes=10, sha256=None, duration=1.0
        ),
        FileFailed(file=info("zz:f"), kind="network", message="down"),
        RetryScheduled(key="zz:f", attempt=2, delay=1.0, reason="503"),
        SecurityScanFinished(key="zz:f", verdict="clean"),
    )
    assert state.events_seen == 6
    assert state.jobs["j1"].files == {} and "zz" not in state.jobs
    assert state.take_dirty() == (set(), False)


def test_retry_and_scan_events_reach_the_file_row() -> None:
    state = state_with("j1")
    feed(
        state,
        RetryScheduled(key="j1:f", attempt=2, delay=1.5, reason="HTTP 503"),
        SecurityScanFinished(key="j1:f", verdict="clean"),
    )
    view = state.jobs["j1"].files["j1:f"]
    assert (view.attempts, view.error, view.scan) == (2, "retry in 1.5 s: HTTP 503", "clean")


def test_state_change_of_an_unseen_job_adds_a_row_and_stops_its_files() -> None:
    state = state_with("j1")
    feed(state, FileProgress(key="j1:f", done=40, total=100, speed=9.0, connections=4))
    assert state.jobs["j1"].speed == 9.0
    feed(
        state,
        JobStateChanged(job_id="j1", old="PROCESSING", new="PAUSED"),
        JobStateChanged(job_id="j2", old=None, new="PENDING"),
    )
    paused = state.jobs["j1"].files["j1:f"]
    assert (paused.state, paused.speed) == ("pending", 0.0)
    assert state.order == ["j1", "j2"] and state.jobs["j2"].name == "…"
    assert state.take_dirty() == ({"j1", "j2"}, True)


def test_optimizer_and_network_events_mark_the_performance_view() -> None:
    state = EngineState()
    feed(
        state,
        OptimizerDecision(setting="connections", old=4, new=8, reason="gain", host="h"),
        NetworkConditionChanged(old=None, new="fast"),
    )
    assert state.perf.dirty and state.perf.condition == "fast"
    assert state.perf.decisions[0]["new"] == 8


def test_detail_of_a_forgotten_job_is_ignored_and_rows_go_when_the_engine_drops_them() -> None:
    state = state_with("j1", "j2")
    state.apply_detail({"id": "nope", "files": [{"key": "nope:f"}]})
    assert "nope" not in state.jobs
    state.apply_summaries([summary("j2")])
    assert list(state.jobs) == ["j2"] and state.order == ["j2"]
    assert state.take_dirty()[1] is True


@pytest.mark.parametrize(
    ("targets", "kind"),
    [
        (("https://example.com/a.safetensors",), "url"),
        (("model:5",), "model"),
        (("weird",), "?"),
        ((), "?"),
    ],
)
def test_job_kind_from_its_first_target(targets: tuple[str, ...], kind: str) -> None:
    assert JobView(id="j", targets=targets).kind == kind


def test_job_kind_prefers_the_model_types_seen() -> None:
    job = JobView(id="j", targets=("model:5",))
    job.apply_files([{"key": "j:f", "name": "a", "model_type": "LORA", "state": "pending"}])
    assert job.kind == "LORA"


def test_unknown_message_types_change_nothing() -> None:
    state = state_with("j1")
    apply_message(state, {"type": "hello"})
    apply_message(state, {"type": "events", "events": [{"type": "from_the_future"}]})
    assert state.events_seen == 0
    assert state.take_dirty() == (set(), False)


def test_where_text_says_where_a_file_is_where_it_came_from_or_why_not() -> None:
    from civitai_tui.tui.state import where_text

    linked = {
        "path": "/m/a.safetensors",
        "content_from": "hardlink",
        "content_source": "/old/a.safetensors",
        "warning": "a.safetensors.civitai.json not written: Is a directory",
    }
    assert where_text(linked) == (
        "/m/a.safetensors (hardlink of /old/a.safetensors); "
        "a.safetensors.civitai.json not written: Is a directory"
    )
    assert where_text({"path": "/m/b", "content_from": "present"}) == "/m/b (already there)"
    assert where_text({"path": "/m/c", "content_from": "download"}) == "/m/c"
    assert where_text({"path": None, "reason": "not fetched yet"}) == "not fetched yet"
    assert where_text({"path": None, "error": "gone", "reason": "gone"}) == ""
