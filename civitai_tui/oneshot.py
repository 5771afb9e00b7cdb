"""``civitai-tui get``: plan the targets and download them now, in this process.

No engine and no queue: the targets are planned with the API client, placed by
the library rules the queue uses (``bulk.layout``, sidecars, previews:
:mod:`civitai_tui.bulk.placement`), the files
downloaded a few at a time through one shared session, and every event goes to
the bus given (progress bars, analytics). Connections are the performance
optimizer's, as in the engine (``GetOptions.optimization``), unless the caller
fixes them (``--connections``). The result lists every file, planned
or not, so the caller can print a summary and choose the exit status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from civitai_tui.bulk.placement import LibrarySettings, add_companions, place
from civitai_tui.civitai.client import ApiLimits, CivitAIClient
from civitai_tui.civitai.layouts import LibraryLayout
from civitai_tui.civitai.planner import PlanFailure, PlanOptions, plan_targets
from civitai_tui.civitai.politeness import RateLimiter
from civitai_tui.civitai.targets import Target
from civitai_tui.download.downloader import FileDownloader
from civitai_tui.download.request import DownloadRequest, Resolver, resolve_direct
from civitai_tui.download.session import create_download_session
from civitai_tui.download.settings import DownloadResult, DownloadSettings
from civitai_tui.events import EventBus
from civitai_tui.perf.config import OptimizationConfig
from civitai_tui.perf.controls import DownloaderControls
from civitai_tui.perf.memory import HostMemory
from civitai_tui.perf.optimizer import PerformanceOptimizer
from civitai_tui.perf.session import create_optimized_session

Landed = Callable[[aiohttp.ClientSession, DownloadRequest, DownloadResult], Awaitable[None]]


@dataclass(frozen=True)
class GetOptions:
    """What to download and how, from the command line."""

    plan: PlanOptions
    max_files: int = 4
    allow_http: bool = False
    #: The optimizer's settings; None: ``DownloadSettings.connections`` per file, fixed.
    optimization: OptimizationConfig | None = None
    #: Where the optimizer keeps what it learned per host (``perf.memory``); None: nowhere.
    host_memory: Path | None = None
    #: Layout, sidecars and previews, as for the queue.
    library: LibrarySettings = field(default_factory=LibrarySettings)


@dataclass
class GetReport:
    """Every planned file's result, and the targets that failed before any file."""

    results: list[tuple[DownloadRequest, DownloadResult]] = field(default_factory=list)
    plan_failures: list[PlanFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every file is complete (or already present) and verified."""
        return not self.plan_failures and all(r.status != "failed" for _, r in self.results)


async def download_all(
    requests: Sequence[DownloadRequest],
    *,
    settings: DownloadSettings,
    bus: EventBus,
    max_files: int,
    optimization: OptimizationConfig | None = None,
    host_memory: Path | None = None,
    landed: Landed | None = None,
    resolve: Resolver = resolve_direct,
) -> list[DownloadResult]:
    """Download ``requests``, ``max_files`` at a time, through one shared session.

    With ``optimization`` a :class:`PerformanceOptimizer` tunes the connections;
    ``landed(session, request, result)`` runs for each file that is in place;
    ``resolve`` turns sources into URLs (the API client's, for CivitAI files).
    """
    holder: list[FileDownloader] = []
    optimizer = None
    if optimization is None:
        session = create_download_session(limit_per_host=max(32, max_files * settings.connections))
    else:
        optimizer = PerformanceOptimizer(
            bus,
            DownloaderControls(lambda: holder[0] if holder else None),
            optimization,
            HostMemory(host_memory) if host_memory else None,
        )
        optimizer.set_rate_cap(settings.speed.overall.rate)  # never probes past the limit
        settings = replace(settings, stream_observer=optimizer.health.record_stream)
        session = create_optimized_session(optimizer)
    try:
        downloader = FileDownloader(session, bus=bus, settings=settings, resolve=resolve)
        holder.append(downloader)
        if optimizer is not None:
            await optimizer.start()
        gate = asyncio.Semaphore(max_files)

        async def one(request: DownloadRequest) -> DownloadResult:
            async with gate:
                result = await downloader.download(request)
            if landed is not None and result.status != "failed" and result.path is not None:
                await landed(session, request, result)
            return result

        return list(await asyncio.gather(*(one(r) for r in requests)))
    finally:
        if optimizer is not None:
            await optimizer.stop()
        await session.close()


async def run_get(
    targets: Sequence[Target],
    options: GetOptions,
    *,
    base_url: str,
    api_key: str | None,
    settings: DownloadSettings,
    bus: EventBus,
    on_planned: Callable[[list[DownloadRequest]], None] | None = None,
    limiters: Mapping[str, RateLimiter | ApiLimits] | None = None,
) -> GetReport:
    """Plan and download ``targets``; ``on_planned(requests)`` runs between the two.

    ``limiters`` are the client's pacing and size bounds (``runtime_settings.api_options``).
    """
    library = options.library

    async def landed(
        session: aiohttp.ClientSession, request: DownloadRequest, result: DownloadResult
    ) -> None:
        assert result.path is not None
        result.warning = await add_companions(
            session,
            result.path,
            request.info,
            result.sha256,
            request.preview_url,
            sidecars=library.sidecars,
            previews=library.previews,
            base_url=base_url,
            allow_http=options.allow_http,
        )

    async with CivitAIClient(
        base_url, api_key, allow_http=options.allow_http, bus=bus, **(limiters or {})
    ) as client:
        requests, failures = await _placed_plan(client, targets, options)
        if on_planned is not None:
            on_planned(requests)
        results = await download_all(
            requests,
            settings=settings,
            bus=bus,
            max_files=options.max_files,
            optimization=options.optimization,
            host_memory=options.host_memory,
            landed=landed,
            resolve=client.resolve_source,
        )
    return GetReport(results=list(zip(requests, results, strict=True)), plan_failures=failures)


async def plan_get(
    targets: Sequence[Target],
    options: GetOptions,
    *,
    base_url: str,
    api_key: str | None,
    bus: EventBus,
    limiters: Mapping[str, RateLimiter | ApiLimits] | None = None,
) -> tuple[list[DownloadRequest], list[PlanFailure]]:
    """What ``run_get`` would download, placed, without downloading (``get --dry-run``)."""
    async with CivitAIClient(
        base_url, api_key, allow_http=options.allow_http, bus=bus, **(limiters or {})
    ) as client:
        return await _placed_plan(client, targets, options)


async def _placed_plan(
    client: CivitAIClient, targets: Sequence[Target], options: GetOptions
) -> tuple[list[DownloadRequest], list[PlanFailure]]:
    planned, failures = await plan_targets(client, targets, options.plan)
    layout = LibraryLayout(options.plan.dest, options.library.layout, options.library.template)
    return [place(layout, r) for r in planned], failures
