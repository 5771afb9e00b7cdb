"""Links planted in a shared destination folder: nothing is ever written or chmodded through them.

Another local user can create ``<name>.part``, ``<name>.part.ctl`` or the control
file's temporary as a symbolic link to a file of ours (here: ``victim``); the
engine must never write model bytes or the signed URL into it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from civitai_tui.download import disk
from civitai_tui.download.control import ControlState, control_path, load_control, save_control
from civitai_tui.download.downloader import FileDownloader
from civitai_tui.download.request import DirectSource, DownloadRequest
from civitai_tui.download.session import create_download_session
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import FileInfo
from tests.loopback import serve_app

BODY = os.urandom(256 * 1024)
NAME = "m.raw"
VICTIM_TEXT = b"ssh-ed25519 AAAA... the user's own file\n"


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A loopback server for one file (ranges, ETag); returns its URL and validators."""
    served = tmp_path / "served"
    served.mkdir()
    (served / NAME).write_bytes(BODY)

    async def serve(_: web.Request) -> web.FileResponse:
        return web.FileResponse(served / NAME)

    app = web.Application()
    app.router.add_get(f"/{NAME}", serve)
    async with serve_app(app) as port:
        url = f"http://127.0.0.1:{port}/{NAME}"
        async with create_download_session() as session, session.head(url) as resp:
            validators = {
                "etag": resp.headers["ETag"],
                "last_modified": resp.headers["Last-Modified"],
            }
        yield url, validators


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim"
    path.write_bytes(VICTIM_TEXT)
    path.chmod(0o600)
    return path


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "shared"
    path.mkdir()
    return path


async def download(url: str, dest: Path):
    request = DownloadRequest(
        info=FileInfo(key="k", name=NAME, size=len(BODY), host="127.0.0.1"),
        source=DirectSource(url),
        dest_dir=dest,
        filename=NAME,
        expected_size=len(BODY),
    )
    async with create_download_session() as session:
        return await FileDownloader(session).download(request)


def untouched(victim: Path) -> None:
    assert victim.read_bytes() == VICTIM_TEXT
    assert (victim.stat().st_mode & 0o777) == 0o600


async def test_a_planted_part_link_is_replaced_not_followed(
    origin: tuple[str, dict[str, str]], dest: Path, victim: Path
) -> None:
    (dest / f"{NAME}.part").symlink_to(victim)
    result = await download(origin[0], dest)
    assert result.status == "completed", result.error
    assert (dest / NAME).read_bytes() == BODY
    untouched(victim)


async def test_a_part_link_with_resume_state_is_refused(
    origin: tuple[str, dict[str, str]], dest: Path, victim: Path
) -> None:
    url, validators = origin
    part = dest / f"{NAME}.part"
    save_control(control_path(part), ControlState(size=len(BODY), done=[(0, 1024)], **validators))
    part.symlink_to(victim)
    result = await download(url, dest)
    assert result.status == "failed"
    assert result.error is not None and result.error.kind is FailureKind.FILESYSTEM
    assert "symbolic link" in result.error.message and "nothing was written" in result.error.message
    untouched(victim)


def test_a_planted_control_temporary_is_never_written(dest: Path, victim: Path) -> None:
    ctl = control_path(dest / f"{NAME}.part")
    (dest / f"{NAME}.part.ctl.tmp").symlink_to(victim)  # the old fixed temporary name
    save_control(ctl, ControlState(size=10, etag='"e"', url="https://s.example/f?sig=SECRET"))
    untouched(victim)
    assert load_control(ctl) is not None and not ctl.is_symlink()


def test_control_files_are_written_exclusively_and_read_only_when_ours(tmp_path: Path) -> None:
    ctl = control_path(tmp_path / f"{NAME}.part")
    save_control(ctl, ControlState(size=10, etag='"e"'))
    assert load_control(ctl) is not None
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    planted = tmp_path / "attacker.json"  # a valid state naming the attacker's URL
    ctl.rename(planted)
    ctl.symlink_to(planted)
    assert load_control(ctl) is None  # never read through a link


@pytest.mark.parametrize("kind", ["fifo", "hardlink"])
def test_resuming_refuses_what_is_not_our_plain_file(tmp_path: Path, kind: str) -> None:
    part = tmp_path / "x.part"
    if kind == "fifo":
        os.mkfifo(part)
    else:
        other = tmp_path / "elsewhere"
        other.write_bytes(b"x")
        os.link(other, part)
    with pytest.raises(CivitaiTuiError) as info:
        disk.open_part(part, resume=True)
    assert info.value.kind is FailureKind.FILESYSTEM and "not a partial download of ours" in (
        info.value.message
    )
