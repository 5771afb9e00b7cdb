"""picklescan wrapper: a real malicious pickle (built, never loaded) and clean ones."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest

from civitai_tui.security import pickles
from civitai_tui.security.pickles import scan_pickle


class Evil:
    def __reduce__(self):
        return (os.system, ("echo hi",))


def evil_zip_ckpt(path: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(Evil(), protocol=2))
        zf.writestr("archive/data/0", bytes(64))
    path.write_bytes(buf.getvalue())
    return path


async def test_malicious_pickle_is_flagged_with_its_global(tmp_path: Path) -> None:
    raw = tmp_path / "evil.pt"
    raw.write_bytes(pickle.dumps(Evil(), protocol=4))
    report = await scan_pickle(raw, timeout=60)
    assert not report.clean
    assert "posix.system" in report.dangerous
    assert "posix.system" in report.describe()


async def test_malicious_zip_checkpoint_is_flagged(tmp_path: Path) -> None:
    report = await scan_pickle(evil_zip_ckpt(tmp_path / "evil.ckpt"), timeout=60)
    assert not report.clean and report.dangerous == ("posix.system",)


async def test_clean_pickle_passes(tmp_path: Path) -> None:
    path = tmp_path / "ok.ckpt"
    path.write_bytes(pickle.dumps(OrderedDict(weight=[1, 2, 3]), protocol=2))
    report = await scan_pickle(path, timeout=60)
    assert report.clean, report
    assert report.describe() == "no dangerous pickle globals"


async def test_truncated_malicious_pickle_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.bin"
    path.write_bytes(pickle.dumps(Evil(), protocol=4)[:-4])
    report = await scan_pickle(path, timeout=60)
    assert not report.clean and "posix.system" in report.dangerous


async def test_large_pickle_data_is_scanned_in_a_child_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pickles, "IN_PROCESS_LIMIT", 0)
    raw = tmp_path / "evil.pt"
    raw.write_bytes(pickle.dumps(Evil(), protocol=4))
    assert pickles.pickle_data_size(raw) == raw.stat().st_size
    report = await scan_pickle(raw, timeout=60)
    assert "posix.system" in report.dangerous and not report.clean


def test_pickle_data_size_counts_only_what_the_scanner_parses(tmp_path: Path) -> None:
    ckpt = evil_zip_ckpt(tmp_path / "m.ckpt")
    with zipfile.ZipFile(ckpt) as zf:
        assert pickles.pickle_data_size(ckpt) == zf.getinfo("archive/data.pkl").file_size
    noise = tmp_path / "noise.bin"  # not a zip: all of it is parsed, whatever its first byte
    noise.write_bytes(b"\x00" * 1000)
    assert pickles.pickle_data_size(noise) == 1000


async def test_timeout_is_a_failed_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pickles, "IN_PROCESS_LIMIT", 0)  # a child process: slower than 1 ms
    path = tmp_path / "ok.ckpt"
    path.write_bytes(pickle.dumps(OrderedDict(a=1)))
    report = await scan_pickle(path, timeout=0.001)
    assert not report.clean and report.error is not None and "longer than" in report.error


async def test_files_named_like_pickles_that_do_not_parse_are_refused(tmp_path: Path) -> None:
    from civitai_tui.errors import FailureKind
    from civitai_tui.security.verify import Expectations, verify_file

    data = tmp_path / "firmware.bin"
    data.write_bytes(b"\x00" + os.urandom(4095))  # cannot be checked: never passed
    refused = await verify_file(data, Expectations(name=data.name, size=4096))
    assert refused.error is not None and refused.error.kind is FailureKind.INVALID_FORMAT
    assert "cannot be parsed as a pickle" in refused.error.message
    old = tmp_path / "weights.bin"  # a protocol-0 pickle: no 0x80 magic, still dangerous
    old.write_bytes(pickle.dumps(Evil(), protocol=0))
    bad = await verify_file(old, Expectations(name=old.name, size=old.stat().st_size))
    assert bad.error is not None and bad.error.kind is FailureKind.UNSAFE
    renamed = tmp_path / "model.ckpt"
    renamed.write_bytes(b"\x00" + os.urandom(4095))
    wrong = await verify_file(renamed, Expectations(name=renamed.name, size=4096))
    assert wrong.error is not None and wrong.error.kind is FailureKind.INVALID_FORMAT
