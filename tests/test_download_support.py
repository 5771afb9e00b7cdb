"""Helpers shared by the downloader's integration tests (no tests here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from civitai_tui.download.disk import FreeSpaceRule
from civitai_tui.download.downloader import FileDownloader
from civitai_tui.download.request import (
    DirectSource,
    DownloadRequest,
    ResolvedURL,
    Resolver,
    Source,
    resolve_direct,
)
from civitai_tui.download.retry import RetryPolicy
from civitai_tui.download.session import create_download_session
from civitai_tui.download.settings import DownloadSettings
from civitai_tui.events import EventBus, FileInfo
from civitai_tui.simulator.catalogue import SimFile
from civitai_tui.simulator.server import Simulator

KiB = 1024
MiB = 1 << 20


def fast_settings(**changes: object) -> DownloadSettings:
    """Small splits, short timeouts and quick retries: tests finish in well under a second."""
    settings = DownloadSettings(
        connections=4,
        min_split=128 * KiB,
        buffer_size=256 * KiB,
        checkpoint_seconds=0.1,
        stall_timeout=2.0,
        file_stall_timeout=20.0,
        min_speed=0,
        min_free_space=FreeSpaceRule(size=0),
        progress_interval=0.05,
        retry=RetryPolicy(max_attempts=4, base_delay=0.05, cap=3.0),
    )
    for name, value in changes.items():
        setattr(settings, name, value)
    return settings


def pick(sim: Simulator, lo: int, hi: int, ext: str = ".safetensors") -> SimFile:
    """A deterministic simulated file with ``lo <= size <= hi`` and the extension."""
    specials = sim.catalogue.specials
    avoid = {
        specials.wrong_hash.file_id,
        specials.no_hashes.file_id,
        specials.blake3_only.file_id,
        specials.unicode_name.file_id,
        specials.hostile_names.file_id,
    }
    for file in sorted(sim.catalogue.files(), key=lambda f: (f.size, f.id)):
        if lo <= file.size <= hi and file.name.endswith(ext) and file.id not in avoid:
            return file
    raise LookupError(f"no {ext} file between {lo} and {hi} bytes")


def request_for(
    sim: Simulator, file: SimFile, dest: Path, *, verify: bool = True, named: bool = True, **kw
) -> DownloadRequest:
    return DownloadRequest(
        info=FileInfo(key=f"f{file.id}", name=file.name, file_id=file.id),
        source=kw.pop("source", None) or DirectSource(sim.signed_url(file.id)),
        dest_dir=dest,
        filename=file.name if named else None,
        expected_size=file.size if verify else None,
        sha256=file.sha256 if verify else None,
        **kw,
    )


@dataclass
class CountingResolver:
    """A resolver that hands out the given URLs in turn (whatever the source) and counts."""

    urls: list[str]
    expires_at: float | None = None
    calls: list[str] = field(default_factory=list)

    async def __call__(self, source: Source) -> ResolvedURL:
        url = self.urls[min(len(self.calls), len(self.urls) - 1)]
        self.calls.append(url)
        return ResolvedURL(url, self.expires_at)


@asynccontextmanager
async def downloader(
    settings: DownloadSettings | None = None,
    bus: EventBus | None = None,
    resolve: Resolver = resolve_direct,
) -> AsyncIterator[FileDownloader]:
    async with create_download_session() as session:
        yield FileDownloader(session, bus or EventBus(), settings or fast_settings(), resolve)


@pytest.fixture(name="dest")
def dest_fixture(tmp_path: Path) -> Path:
    """The model folder of a test (its own directory, apart from the state dir)."""
    return tmp_path / "models"


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir()) if dest.exists() else []
