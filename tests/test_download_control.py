"""The resume control file: atomic round trip, permissions, corruption."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from civitai_tui.download.control import (
    ControlState,
    control_path,
    load_control,
    remove_control,
    save_control,
)


def test_round_trip_and_mode(tmp_path: Path) -> None:
    path = control_path(tmp_path / "model.safetensors.part")
    assert path.name == "model.safetensors.part.ctl"
    state = ControlState(
        size=1000,
        etag='"abc"',
        last_modified="Tue, 01 Jul 2025 10:00:00 GMT",
        url="http://127.0.0.1:1/f?sig=s3cret",
        url_expires_at=1e10,
        done=[(0, 100), (500, 600)],
    )
    save_control(path, state)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_control(path) == state
    assert state.done_bytes == 200
    assert not list(tmp_path.glob("*.tmp"))
    remove_control(path)
    assert load_control(path) is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"\x00\xff\xfe",
        json.dumps({"version": 99, "size": 1, "done": []}).encode(),
        json.dumps({"version": 1, "size": -5, "done": []}).encode(),
        json.dumps({"version": 1, "size": 10, "done": [[0, 20]]}).encode(),
        json.dumps({"version": 1, "size": 10, "done": [[0, 5]], "etag": 7}).encode(),
        json.dumps({"version": 1, "done": []}).encode(),
    ],
)
def test_corrupt_file_reads_as_none_with_a_log_line(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "x.part.ctl"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert load_control(path) is None
    assert "starting from zero" in caplog.text
