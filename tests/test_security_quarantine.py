"""Quarantine moves the file out of the model folder and leaves a masked note."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from conftest import TOKEN

from civitai_tui.security.quarantine import QuarantineNote, quarantine


def test_quarantine_moves_file_and_writes_masked_note(tmp_path: Path, isolated_home: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    bad = models / "x.safetensors.part"
    bad.write_bytes(b"evil")
    note = QuarantineNote(
        reason=f"SHA256 mismatch; fetched with token={TOKEN}",
        kind="hash_mismatch",
        name="x.safetensors",
        source=f"http://127.0.0.1:9/files/1/x?expires=1&sig=abcdef&token={TOKEN}",
        expected_sha256="AA" * 32,
        actual_sha256="bb" * 32,
        size=4,
    )
    where = quarantine(bad, note)
    assert not bad.exists() and not list(models.iterdir())
    assert where.parent == isolated_home / "quarantine"
    assert where.name.endswith("-x.safetensors") and where.read_bytes() == b"evil"
    assert stat.S_IMODE(where.stat().st_mode) == 0o600
    saved = json.loads(where.with_name(where.name + ".reason.json").read_text())
    assert saved["kind"] == "hash_mismatch" and saved["actual_sha256"] == "bb" * 32
    text = json.dumps(saved)
    assert TOKEN not in text and "abcdef" not in text
