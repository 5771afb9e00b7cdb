"""The engine tells the truth: no COMPLETED job without every file where it was asked.

Each test drives the real engine subprocess through the CLI against the
simulator, breaks one thing a user can meet (something in the way of the final
rename, an immutable folder, a quarantine that cannot be made, a hostile
header), and checks the job state, ``wait``'s exit status, the files on disk
and the log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from civitai_tui.engine.client import EngineClient
from civitai_tui.simulator.catalogue import FileRef, SimFile, SimModel
from civitai_tui.simulator.server import Simulator
from tests.engine_cli import Cli, engine_home, until
from tests.loopback import serve_app

pytestmark = pytest.mark.slow

WAIT = ("wait", "--timeout", "90")


def small_models(
    sim: Simulator, count: int, max_size: int = 1 << 20
) -> list[tuple[SimModel, SimFile]]:
    """Healthy models whose latest primary file is under ``max_size``, with that file."""
    specials = vars(sim.catalogue.specials).values()
    special_models = {ref.model_id for ref in specials if isinstance(ref, FileRef)}
    found = []
    for model in sim.catalogue.models:
        version = model.versions[0]
        primary = version.primary_file()
        if (
            model.id not in special_models
            and model.mode is None
            and version.early_access_ends_at is None
            and primary is not None
            and primary.size < max_size
            and primary.name.isascii()
        ):
            found.append((model, primary))
            if len(found) == count:
                return found
    raise AssertionError(f"the catalogue has fewer than {count} small plain models")


def engine_log(home: Path) -> str:
    return (home / "logs" / "civitai-tui.log").read_text(encoding="utf-8", errors="replace")


async def details(home: Path, job_id: str) -> dict[str, Any]:
    async with EngineClient(home / "engine.sock") as client:
        return await client.job(job_id)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest().upper()


@pytest.fixture
def setup(sim: Simulator, tmp_path: Path, clis: list[Cli]) -> tuple[Cli, Path, Path]:
    return engine_home(sim, tmp_path, clis, "[download]\ncheckpoint_seconds = 0.5\n")


async def retried(cli: Cli, job_id: str) -> None:
    """``retry`` the job, then ``wait`` for it: it must end with every file landed."""
    await cli("retry", job_id)
    code, _, err = await cli(*WAIT, check=False)
    assert code == 0, err


async def add(cli: Cli, lib: Path, *targets: str) -> str:
    out = (await cli("add", *targets, "--dest", str(lib), "--json"))[1]
    return str(json.loads(out)["id"])


async def test_a_directory_at_the_final_path_fails_the_file_the_job_and_wait(
    sim: Simulator, setup: tuple[Cli, Path, Path]
) -> None:
    cli, home, lib = setup
    (blocked_model, blocked), (free_model, free) = small_models(sim, 2)
    (lib / blocked.name).mkdir(parents=True)
    job_id = await add(cli, lib, f"model:{blocked_model.id}", f"model:{free_model.id}")

    code, _, err = await cli(*WAIT, check=False)
    assert code == 1, err
    (job,) = await cli.jobs()
    assert (job["state"], job["files_done"], job["files_failed"]) == ("FAILED", 1, 1)
    files = {f["name"]: f for f in (await details(home, job_id))["files"]}
    assert files[blocked.name]["state"] == "failed"
    assert files[blocked.name]["error_kind"] == "filesystem"
    assert "Is a directory" in files[blocked.name]["error"]
    assert sha256(lib / free.name) == free.content.hashes().sha256
    assert (lib / blocked.name).is_dir()
    assert f"{blocked.name} failed (filesystem)" in engine_log(home)

    # Clear the way and retry: the verified .part moves into place, the job completes.
    (lib / blocked.name).rmdir()
    await retried(cli, job_id)
    assert (await cli.jobs())[0]["state"] == "COMPLETED"
    assert sha256(lib / blocked.name) == blocked.content.hashes().sha256
    assert not [p for p in lib.iterdir() if p.name.endswith((".part", ".ctl"))]

    # A COMPLETED job can be queued again: a file deleted since is fetched again.
    (lib / free.name).unlink()
    await retried(cli, job_id)
    assert sha256(lib / free.name) == free.content.hashes().sha256


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Folders a test makes immutable (``chattr +i``: root ignores chmod); undone at the end."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed (e2fsprogs)")
    made: list[Path] = []
    yield made
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def make_immutable(path: Path, made: list[Path]) -> None:
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
    made.append(path)


async def test_a_folder_made_immutable_mid_download_fails_the_file_and_retry_lands_it(
    sim: Simulator, setup: tuple[Cli, Path, Path], immutable: list[Path]
) -> None:
    cli, home, lib = setup
    ((model, primary),) = small_models(sim, 1)
    sim.faults.set(primary.id, per_connection_rate=max(primary.size // 4, 1))
    job_id = await add(cli, lib, f"model:{model.id}")
    await until(lambda: any(lib.glob("*.part")))
    make_immutable(lib, immutable)
    sim.faults.reset()

    code, _, err = await cli(*WAIT, check=False)
    assert code == 1, err
    (job,) = await cli.jobs()
    assert job["state"] == "FAILED"
    (f,) = (await details(home, job_id))["files"]
    assert (f["state"], f["error_kind"]) == ("failed", "filesystem")
    assert "Operation not permitted" in f["error"]
    assert not (lib / primary.name).exists()
    assert f"{primary.name} failed (filesystem)" in engine_log(home)

    subprocess.run(["chattr", "-i", str(lib)], check=True)
    await retried(cli, job_id)
    assert sha256(lib / primary.name) == primary.content.hashes().sha256


async def test_a_quarantine_that_cannot_be_made_still_fails_the_file_and_deletes_it(
    sim: Simulator, setup: tuple[Cli, Path, Path]
) -> None:
    cli, home, lib = setup
    (home / "quarantine").write_text("a file where the quarantine folder should be")
    wrong = sim.catalogue.specials.wrong_hash
    job_id = await add(cli, lib, f"model:{wrong.model_id}")

    code, _, err = await cli(*WAIT, check=False)
    assert code == 1, err
    (f,) = (await details(home, job_id))["files"]
    assert (f["state"], f["error_kind"]) == ("failed", "hash_mismatch")
    assert "could not be quarantined" in f["error"] and "was deleted" in f["error"]
    assert not [p for p in lib.iterdir() if p.is_file()]  # neither the model nor its .part
    assert "cannot quarantine" in engine_log(home)


@pytest.fixture
async def hostile_origin(tmp_path: Path) -> AsyncIterator[str]:
    """A loopback origin serving a .safetensors whose header JSON is nested 200,000 deep."""
    header = b'{"a":' * 200_000 + b"1" + b"}" * 200_000
    body = len(header).to_bytes(8, "little") + header
    path = tmp_path / "served" / "deep.safetensors"
    path.parent.mkdir()
    path.write_bytes(body)

    async def serve(_: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/deep.safetensors", serve)
    async with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}/deep.safetensors"


async def test_a_header_nested_200k_deep_is_refused_not_completed(
    sim: Simulator, setup: tuple[Cli, Path, Path], hostile_origin: str
) -> None:
    cli, home, lib = setup
    ((model, primary),) = small_models(sim, 1)
    job_id = await add(cli, lib, hostile_origin, f"model:{model.id}")

    code, _, err = await cli(*WAIT, check=False)
    assert code == 1, err
    files = {f["name"]: f for f in (await details(home, job_id))["files"]}
    assert (await cli.jobs())[0]["files_failed"] == 1
    deep = next(f for name, f in files.items() if name != primary.name)
    assert (deep["state"], deep["error_kind"]) == ("failed", "invalid_format")
    assert "nested too deeply" in deep["error"] and "quarantined at" in deep["error"]
    assert sorted(p.name for p in lib.iterdir()) == sorted(
        [primary.name, primary.name + ".civitai.json"]
    )
    assert "deep.safetensors failed (invalid_format)" in engine_log(home)


async def test_content_the_library_has_elsewhere_lands_in_the_asked_folder(
    sim: Simulator, setup: tuple[Cli, Path, Path]
) -> None:
    cli, home, lib = setup
    ((model, primary),) = small_models(sim, 1)
    first = await add(cli, lib, f"model:{model.id}")
    assert (await cli(*WAIT, check=False))[0] == 0
    original = lib / primary.name
    sent = sim.stats.storage_bytes_sent

    # Default bulk.dedupe = link: a hard link on the same file system, nothing fetched.
    linked_dir = lib.parent / "linked"
    second = await add(cli, linked_dir, f"model:{model.id}")
    code, _, err = await cli(*WAIT, check=False)
    assert code == 0, err
    linked = linked_dir / primary.name
    assert linked.stat().st_ino == original.stat().st_ino
    assert (linked_dir / (primary.name + ".civitai.json")).is_file()
    (f,) = (await details(home, second))["files"]
    assert (f["state"], f["path"]) == ("skipped", str(linked))
    assert (f["content_from"], f["content_source"]) == ("hardlink", str(original))
    assert sim.stats.storage_bytes_sent == sent
    assert f"{linked}: hardlink of {original}" in engine_log(home)
    (g,) = (await details(home, first))["files"]
    assert (g["content_from"], g["content_source"]) == ("download", None)

    # bulk.dedupe = copy: an independent copy (a reflink where the file system can).
    await cli("config", "set", "bulk.dedupe", "copy")
    copied_dir = lib.parent / "copied"
    third = await add(cli, copied_dir, f"model:{model.id}")
    assert (await cli(*WAIT, check=False))[0] == 0
    copied = copied_dir / primary.name
    assert copied.stat().st_ino != original.stat().st_ino
    assert sha256(copied) == primary.content.hashes().sha256
    (f,) = (await details(home, third))["files"]
    assert f["content_from"] in ("reflink", "copy") and f["content_source"] == str(original)
    assert sim.stats.storage_bytes_sent == sent

    # bulk.dedupe = download: fetched again.
    await cli("config", "set", "bulk.dedupe", "download")
    fetched_dir = lib.parent / "fetched"
    fourth = await add(cli, fetched_dir, f"model:{model.id}")
    assert (await cli(*WAIT, check=False))[0] == 0
    assert sha256(fetched_dir / primary.name) == primary.content.hashes().sha256
    (f,) = (await details(home, fourth))["files"]
    assert (f["content_from"], f["content_source"]) == ("download", None)
    assert sim.stats.storage_bytes_sent >= sent + primary.size

    # ls --json tells each file's final path and where its content came from.
    listed = {j["id"]: j for j in await cli.jobs()}
    assert listed[second]["files"][0]["path"] == str(linked)
    assert listed[second]["files"][0]["content_source"] == str(original)


async def test_a_copy_that_vanished_before_it_was_placed_is_downloaded_instead(
    sim: Simulator, setup: tuple[Cli, Path, Path]
) -> None:
    cli, home, lib = setup
    (home / "config.toml").write_text("[bulk]\nbatch_size = 1\nstrategy = 'sequential'\n")
    (model, primary), (slow_model, slow) = small_models(sim, 2)
    await add(cli, lib, f"model:{model.id}")
    assert (await cli(*WAIT, check=False))[0] == 0
    # One file at a time: while the slow first file downloads, the second waits with
    # the library's copy noted; then that copy goes away (a disk unmounted meanwhile).
    sim.faults.set(slow.id, per_connection_rate=max(slow.size // 8, 1))
    other = lib.parent / "other"
    job_id = await add(cli, other, f"model:{slow_model.id}", f"model:{model.id}")
    source = str(lib / primary.name)
    seen: dict[str, dict[str, Any]] = {}

    async def noted() -> bool:
        seen.update({f["name"]: f for f in (await details(home, job_id))["files"]})
        return seen.get(primary.name, {}).get("content_source") == source

    deadline = asyncio.get_running_loop().time() + 60
    while not await noted():
        assert asyncio.get_running_loop().time() < deadline, seen
    assert seen[primary.name]["state"] == "pending" and seen[slow.name]["state"] == "downloading"
    shutil.rmtree(lib)
    sim.faults.reset()

    code, _, err = await cli(*WAIT, check=False)
    assert code == 0, err
    assert sha256(other / primary.name) == primary.content.hashes().sha256
    files = {f["name"]: f for f in (await details(home, job_id))["files"]}
    f = files[primary.name]
    assert (f["state"], f["content_from"], f["content_source"]) == ("completed", "download", None)
    assert "downloading it instead" in engine_log(home)


async def test_a_sidecar_that_cannot_be_written_is_shown_and_logged(
    sim: Simulator, setup: tuple[Cli, Path, Path]
) -> None:
    cli, home, lib = setup
    ((model, primary),) = small_models(sim, 1)
    (lib / (primary.name + ".civitai.json")).mkdir(parents=True)  # in the sidecar's way
    job_id = await add(cli, lib, f"model:{model.id}")

    code, _, err = await cli(*WAIT, check=False)
    assert code == 0, err  # the model itself is in place and verified
    (f,) = (await details(home, job_id))["files"]
    assert (
        f["state"] == "completed" and sha256(lib / primary.name) == primary.content.hashes().sha256
    )
    assert f["warning"].startswith(primary.name + ".civitai.json not written")
    assert f"{primary.name}.civitai.json not written" in engine_log(home)


async def test_a_small_volume_takes_a_small_file_and_a_refusal_says_what_to_do(
    sim: Simulator, setup: tuple[Cli, Path, Path], tiny_disk: Path
) -> None:
    cli, home, _ = setup
    (model, primary), (other_model, other) = small_models(sim, 2, max_size=300 * 1024)
    await add(cli, tiny_disk, f"model:{model.id}")
    code, _, err = await cli(*WAIT, check=False)
    assert code == 0, err  # the default keeps min(1 GiB, 2 %) free: 20 KiB of this 1 MiB disk
    assert sha256(tiny_disk / primary.name) == primary.content.hashes().sha256

    await cli("config", "set", "download.min_free_space", "900KiB")
    job_id = await add(cli, tiny_disk, f"model:{other_model.id}")
    code, _, err = await cli(*WAIT, check=False)
    assert code == 1, err
    (f,) = (await details(home, job_id))["files"]
    assert (f["state"], f["error_kind"]) == ("failed", "disk_full")
    for words in (
        f"refused {other.name}",
        "download.min_free_space (900.0 KiB) keeps 900.0 KiB free",
        "are free",
        "free some space or lower download.min_free_space, then retry",
    ):
        assert words in f["error"], f["error"]
    assert "partial download" not in f["error"]  # there is none
    assert not [p for p in tiny_disk.iterdir() if p.name.startswith(other.name)]
    assert f"{other.name} failed (disk_full)" in engine_log(home)

    # FAILED, not waiting: `retry` once there is room (here: a smaller margin) finishes it.
    await cli("config", "set", "download.min_free_space", "0")
    await retried(cli, job_id)
    assert sha256(tiny_disk / other.name) == other.content.hashes().sha256


async def test_a_file_that_lands_while_another_job_waits_is_linked_not_fetched_again(
    sim: Simulator, setup: tuple[Cli, Path, Path]
) -> None:
    cli, home, lib = setup
    config = "[bulk]\nbatch_size = 1\nconcurrent_batches = 2\nstrategy = 'parallel'\n"
    (home / "config.toml").write_text(config)
    (model, primary), (slow_model, slow) = small_models(sim, 2)
    sim.faults.set(primary.id, per_connection_rate=max(primary.size // 3, 1))
    sim.faults.set(slow.id, per_connection_rate=max(slow.size // 12, 1))
    # The second job is planned while the first is still fetching the shared file, and
    # reaches that file only after it landed: it is linked then, not fetched again.
    first = await add(cli, lib / "one", f"model:{model.id}")
    second = await add(cli, lib / "two", f"model:{slow_model.id}", f"model:{model.id}")
    code, _, err = await cli(*WAIT, check=False)
    assert code == 0, err
    one, two = lib / "one" / primary.name, lib / "two" / primary.name
    assert sha256(two) == primary.content.hashes().sha256
    assert one.stat().st_ino == two.stat().st_ino
    assert sim.stats.bytes_per_file[primary.id] == primary.size  # fetched once
    files = {f["name"]: f for f in (await details(home, second))["files"]}
    assert (files[primary.name]["content_from"], files[primary.name]["content_source"]) == (
        "hardlink",
        str(one),
    )
    (g,) = (await details(home, first))["files"]
    assert g["content_from"] == "download"
