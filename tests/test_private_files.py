"""What the engine writes is for its user only, whatever the folder's mode and the umask, and
secrets in URL targets never reach ``state.db`` or ``ls --json``."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from civitai_tui.analytics.schema import connect
from civitai_tui.download.request import DirectSource
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.logs import setup_logging
from civitai_tui.security.quarantine import QuarantineNote, quarantine
from civitai_tui.simulator.server import Simulator
from tests.engine_cli import Cli

SECRET = "s3cr3t-Value-42"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask 022 (children inherit it), whatever the test runner's is."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.slow
async def test_an_engine_in_an_open_state_dir_writes_private_files(
    sim: Simulator,
    tmp_path: Path,
    clis: list[Cli],
    open_umask: None,
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / "logs").mkdir(mode=0o755)  # left open by an older version
    cli = Cli(home, sim)
    clis.append(cli)
    url = f"{sim.storage_url}/not-there/model.safetensors?token={SECRET}&v=1"
    _, added, _ = await cli("add", url, "--dest", str(tmp_path / "lib"), "--json")
    await cli("wait", "--timeout", "60", check=False)
    _, listed, _ = await cli("ls", "--json")

    assert mode(home / "logs") == 0o700
    for name in ("state.db", "analytics.db", "logs/engine.out", "logs/civitai-tui.log"):
        assert mode(home / name) == 0o600, name
    for extra in home.glob("*.db-*"):  # WAL and shared memory take the database's mode
        assert mode(extra) == 0o600, extra.name
    stored = b"".join(p.read_bytes() for p in home.glob("state.db*"))
    assert b"not-there" in stored  # the target is stored, masked
    assert SECRET.encode() not in stored
    assert SECRET not in added and SECRET not in listed
    assert "token=***" in json.loads(listed)[0]["targets"][0]


def test_analytics_and_logs_are_private_in_an_open_folder(tmp_path: Path, open_umask: None) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    connect(folder / "analytics.db").close()
    log = setup_logging(folder)
    assert mode(folder / "analytics.db") == 0o600
    assert (mode(log.parent), mode(log)) == (0o700, 0o600)


async def test_a_url_whose_secret_was_not_stored_fails_clearly() -> None:
    with pytest.raises(CivitaiTuiError) as info:
        await DirectSource("https://files.example/m.bin?token=***").resolve()
    assert info.value.kind is FailureKind.BAD_TARGET
    assert "add the job again" in info.value.message


def test_quarantine_never_changes_the_mode_through_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("someone's file")
    victim.chmod(0o644)
    planted = tmp_path / "m.safetensors.part"
    planted.symlink_to(victim)
    where = quarantine(planted, QuarantineNote("bad", "invalid_format", "m"), base=tmp_path)
    assert mode(victim) == 0o644 and victim.read_text() == "someone's file"
    assert where.is_symlink() and mode(where.parent) == 0o700
