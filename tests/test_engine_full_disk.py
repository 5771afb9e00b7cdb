"""The state dir on a full disk (a 1 MiB tmpfs): errors the user sees, no ghost, no stale row."""

from __future__ import annotations

import contextlib
import errno
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from civitai_tui.simulator.server import Simulator
from tests.engine_cli import Cli, until

pytestmark = pytest.mark.slow


def fill(disk: Path) -> list[Path]:
    """Fill ``disk`` to the last byte: big writes, then ever smaller ones."""
    fillers, chunk, n = [], 256 * 1024, 0
    while chunk >= 512:
        path = disk / f"filler-{n}"
        n += 1
        try:
            with path.open("wb") as out:
                while True:
                    out.write(b"\0" * chunk)
                    out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        fillers.append(path)
        chunk //= 4
    return fillers


def job_row(home: Path, job_id: str) -> str:
    with sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True) as db:
        return str(db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])


async def test_state_dir_on_a_full_disk(
    sim: Simulator, tmp_path: Path, tiny_disk: Path, clis: list[Cli]
) -> None:
    home, lib, logs = tiny_disk / "home", tmp_path / "lib", tmp_path / "logs"
    home.mkdir()
    logs.mkdir()
    with bound(logs, home / "logs"):  # the log must outlive the full disk to be read
        await full_disk_run(sim, home, lib, logs, tiny_disk, clis)


@contextlib.contextmanager
def bound(source: Path, target: Path) -> Iterator[None]:
    """``source`` mounted at ``target`` (a real folder there, not a link the engine refuses)."""
    target.mkdir()
    done = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount the log folder: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


async def full_disk_run(
    sim: Simulator, home: Path, lib: Path, logs: Path, tiny_disk: Path, clis: list[Cli]
) -> None:
    (home / "config.toml").write_text("[download]\ncheckpoint_seconds = 0.3\n")
    cli = Cli(home, sim)
    clis.append(cli)
    model, file = next(
        (m, f)
        for m in sim.catalogue.models
        if not m.mode and (f := m.versions[0].primary_file()) and 200_000 < f.size < 800_000
    )
    sim.faults.set(file.id, total_rate=100_000)  # seconds, however many connections
    job = json.loads((await cli("add", f"model:{model.id}", "-d", str(lib), "--json"))[1])
    fillers = fill(tiny_disk)

    # add: a clear error, and no job that exists only in memory
    code, _, err = await cli("add", f"model:{model.id}", "-d", str(lib / "2"), check=False)
    assert code == 1 and "could not save to" in err and "disk is full" in err, err
    assert [j["id"] for j in await cli.jobs()] == [job["id"]]

    # the download ends while nothing can be saved: memory does not claim COMPLETED
    def downloaded(jobs: list[dict[str, Any]]) -> bool:
        return jobs[0]["files_total"] > 0 and jobs[0]["files_done"] == jobs[0]["files_total"]

    seen: list[dict[str, Any]] = []

    async def poll() -> bool:
        seen[:] = await cli.jobs()
        return downloaded(seen)

    deadline = 60
    while not await poll():
        deadline -= 1
        assert deadline > 0, seen
    assert seen[0]["state"] == "PROCESSING"
    assert job_row(home, job["id"]) in ("PENDING", "PROCESSING")
    status = json.loads((await cli("engine", "status", "--json"))[1])
    assert "disk is full" in status["store_error"]
    assert "state.db: saving again" not in (logs / "civitai-tui.log").read_text()

    for filler in fillers:
        filler.unlink()
    code, _, err = await cli("wait", "--timeout", "30", check=False)
    assert code == 0, err
    assert job_row(home, job["id"]) == "COMPLETED"
    log = (logs / "civitai-tui.log").read_text()
    assert "state.db: could not save to" in log and "state.db: saving again" in log
    status = json.loads((await cli("engine", "status", "--json"))[1])
    assert status["store_error"] is None
    await cli("engine", "stop")
    await until(lambda: not (home / "engine.sock").exists(), 15)


async def test_the_saver_declares_recovery_only_when_a_write_succeeds(
    sim: Simulator, tiny_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing waiting to be saved is no proof the disk has room: the saver probes with a write."""
    import asyncio

    from civitai_tui.bulk import manager as manager_module
    from civitai_tui.bulk.manager import BulkDownloadManager, ManagerSettings
    from civitai_tui.bulk.store import StoreError

    monkeypatch.setattr(manager_module, "PROGRESS_SAVE_SECONDS", 0.02)
    manager = BulkDownloadManager(ManagerSettings(state_dir=tiny_disk, base_url=sim.api_url))
    await manager.start()
    try:
        fillers = fill(tiny_disk)
        with pytest.raises(StoreError, match="disk is full"):
            await manager.add_job(["model:1"])
        assert manager.jobs() == [] and manager.store_error is not None
        await asyncio.sleep(0.3)  # some 15 saver ticks with nothing to save
        assert manager.store_error is not None
        for filler in fillers:
            filler.unlink()
        await until(lambda: manager.store_error is None, 10)
        job = await manager.add_job(["model:1"])
        assert [j.id for j in manager.jobs()] == [job.id]
    finally:
        await manager.stop()
