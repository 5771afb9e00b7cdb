"""Learned connection budgets: kept between runs, forgotten when stale, never a crash."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from civitai_tui.perf.memory import MAX_AGE, HostMemory


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_budgets_survive_a_restart_and_go_stale(tmp_path: Path) -> None:
    path, clock = tmp_path / "perf_hosts.json", Clock()
    memory = HostMemory(path, clock)
    assert memory.budget("cdn.example") is None
    memory.save()
    assert not path.exists()  # nothing learned, nothing written
    memory.learn("cdn.example", 24, 180e6)
    memory.save()
    assert path.stat().st_mode & 0o777 == 0o600
    assert HostMemory(path, clock).budget("cdn.example") == 24
    clock.now += MAX_AGE + 1
    assert HostMemory(path, clock).budget("cdn.example") is None


def test_the_same_budget_is_not_rewritten_every_tick(tmp_path: Path) -> None:
    path, clock = tmp_path / "perf_hosts.json", Clock()
    memory = HostMemory(path, clock)
    memory.learn("h", 8, 1e6)
    memory.save()
    written = path.stat().st_mtime_ns
    clock.now += 60
    memory.learn("h", 8, 2e6)
    memory.save()
    assert path.stat().st_mtime_ns == written
    memory.learn("h", 9, 2e6)
    memory.save()
    assert json.loads(path.read_text())["hosts"]["h"]["budget"] == 9


@pytest.mark.parametrize("text", ["{not json", '{"hosts": {"h": {"budget": "x"}}}', "[]"])
def test_a_broken_file_is_an_empty_memory_with_a_warning(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "perf_hosts.json"
    path.write_text(text)
    with caplog.at_level(logging.WARNING):
        memory = HostMemory(path)
    assert memory.hosts == {}
    assert "ignoring learned connection budgets" in caplog.text


def test_an_unwritable_state_dir_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    memory = HostMemory(blocker / "perf_hosts.json")
    memory.learn("h", 4, 1e6)
    with caplog.at_level(logging.WARNING):
        memory.save()
    assert "could not save learned connection budgets" in caplog.text


def test_a_connection_limit_and_connections_per_file_are_kept(tmp_path: Path) -> None:
    path, clock = tmp_path / "perf_hosts.json", Clock()
    memory = HostMemory(path, clock)
    memory.learn("cdn.example", 12, 30e6, limit=12, per_file=4)
    memory.save()
    learned = HostMemory(path, clock).hosts["cdn.example"]
    assert (learned.budget, learned.limit, learned.per_file) == (12, 12, 4)
    assert learned.describe() == "4 connections per file, at most 12"
    memory.learn("cdn.example", 12, 30e6, limit=10, per_file=4)  # a new limit is news
    memory.save()
    assert HostMemory(path, clock).hosts["cdn.example"].limit == 10


def test_files_of_older_versions_and_bad_limits(tmp_path: Path) -> None:
    path = tmp_path / "perf_hosts.json"
    old = {"version": 1, "hosts": {"h": {"budget": 8, "rate": 1e6, "at": 1_000_000.0}}}
    path.write_text(json.dumps(old))
    learned = HostMemory(path, Clock()).hosts["h"]
    assert learned.limit is None and learned.per_file is None
    old["hosts"]["h"]["limit"] = 0
    path.write_text(json.dumps(old))
    assert HostMemory(path, Clock()).hosts == {}  # unreadable: an empty memory, no crash
