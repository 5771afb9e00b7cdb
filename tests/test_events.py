"""The event bus: ordering, coalescing, bounds, callbacks."""

from __future__ import annotations

import asyncio
import json

import pytest

from civitai_tui.events import (
    EVENT_TYPES,
    Event,
    EventBus,
    EventFormatError,
    FileCompleted,
    FileInfo,
    FileProgress,
    JobStateChanged,
    MetricsSample,
)

INFO = FileInfo(key="civitai:1", name="a.safetensors", size=10)


def progress(key: str, done: int) -> FileProgress:
    return FileProgress(key=key, done=done, total=100, speed=1.0)


def test_progress_coalesces_in_place_and_keeps_order() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(progress("a", 1))
    bus.publish(JobStateChanged(job_id="j", old="PENDING", new="PROCESSING"))
    bus.publish(progress("b", 5))
    bus.publish(progress("a", 9))
    bus.publish(
        FileCompleted(file=INFO, path="/x", bytes=10, fetched_bytes=10, sha256="", duration=1)
    )
    events = sub.drain()
    assert [e.type for e in events] == [
        "file_progress",
        "job_state_changed",
        "file_progress",
        "file_completed",
    ]
    assert events[0].done == 9  # latest value, first position
    assert events[2].key == "b"
    assert sub.get_nowait() is None


def test_state_changes_are_never_dropped_but_samples_are() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=3)
    for i in range(10):
        bus.publish(MetricsSample(cpu_percent=i, memory_percent=0))
    for i in range(5):
        bus.publish(JobStateChanged(job_id=str(i), old=None, new="PENDING"))
    events = sub.drain()
    states = [e for e in events if isinstance(e, JobStateChanged)]
    samples = [e for e in events if isinstance(e, MetricsSample)]
    assert [e.job_id for e in states] == ["0", "1", "2", "3", "4"]
    assert len(samples) < 10 and sub.dropped == 10 - len(samples)
    assert samples[-1].cpu_percent == 9  # the newest sample survives


async def test_async_iteration_wakes_on_publish_and_ends_on_close() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    seen: list[str] = []

    async def consume() -> None:
        async for event in sub:
            seen.append(event.type)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    bus.publish(JobStateChanged(job_id="j", old=None, new="PENDING"))
    deadline = asyncio.get_running_loop().time() + 2
    while not seen and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    sub.close()
    await asyncio.wait_for(task, 2)
    assert seen == ["job_state_changed"]
    bus.publish(JobStateChanged(job_id="k", old=None, new="PENDING"))
    assert len(sub) == 0  # closed subscriptions receive nothing


def test_callbacks_run_and_a_broken_one_does_not_break_publish() -> None:
    bus = EventBus()
    got: list[str] = []

    def broken(_event: object) -> None:
        raise RuntimeError("boom")

    bus.add_callback(broken)
    remove = bus.add_callback(lambda e: got.append(e.type))
    bus.publish(progress("a", 1))
    remove()
    bus.publish(progress("a", 2))
    assert got == ["file_progress"]


@pytest.mark.parametrize("cls", sorted(EVENT_TYPES.values(), key=lambda c: c.type))
def test_every_event_type_is_registered_and_json_ready(cls: type) -> None:
    assert EVENT_TYPES[cls.type] is cls
    sample = {
        "file_started": {"file": INFO},
        "file_progress": {"key": "k", "done": 1, "total": 2, "speed": 3.0},
        "file_completed": {
            "file": INFO,
            "path": "/p",
            "bytes": 1,
            "fetched_bytes": 1,
            "sha256": "AB",
            "duration": 0.5,
        },
        "file_failed": {"file": INFO, "kind": "auth_required", "message": "m"},
        "retry_scheduled": {"key": "k", "attempt": 1, "delay": 0.1, "reason": "r"},
        "security_scan_finished": {"key": "k", "verdict": "clean"},
        "job_state_changed": {"job_id": "j", "old": None, "new": "PENDING"},
        "metrics_sample": {"cpu_percent": 1.0, "memory_percent": 2.0},
        "optimizer_decision": {"setting": "connections", "old": 1, "new": 2, "reason": "r"},
        "network_condition_changed": {"old": None, "new": "GOOD"},
        "state_save_failed": {"message": "disk full"},
    }[cls.type]
    event = cls(**sample)
    data = json.loads(json.dumps(event.to_dict()))
    assert data["type"] == cls.type and data["ts"] > 0
    assert Event.from_dict(data) == event  # what a client reads is what was published


def test_a_renamed_field_fails_loudly_and_names_it() -> None:
    """An engine and a UI that disagree on a field never read it as a default."""
    data = FileCompleted(file=INFO, path="/p", bytes=5, fetched_bytes=5, sha256=None, duration=1)
    renamed = data.to_dict()
    renamed["byte_count"] = renamed.pop("bytes")
    with pytest.raises(
        EventFormatError, match=r"file_completed event .*missing bytes; unknown byte_count"
    ):
        Event.from_dict(renamed)
    # a renamed field that has a default (connections) is caught as unknown too
    moved = {**progress("k", 1).to_dict(), "conns": 4}
    del moved["connections"]
    with pytest.raises(EventFormatError, match="unknown conns"):
        Event.from_dict(moved)
    nested = data.to_dict()
    nested["file"]["filename"] = nested["file"].pop("name")
    with pytest.raises(EventFormatError, match=r"file_completed\.file event .*missing name"):
        Event.from_dict(nested)


def test_an_event_type_this_version_does_not_know_is_skipped() -> None:
    assert Event.from_dict({"type": "from_the_future", "x": 1}) is None
    assert Event.from_dict({}) is None
