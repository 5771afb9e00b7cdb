"""Everything one engine shares with the fleet about limits: :class:`FleetLimits`.

Built by the engine when ``fleet.url`` is set; without it nothing here exists
and the engine keeps its local limiters. It owns the server link (and so the
``shared``/``degraded`` state ``fleet status`` shows), the two API pacers that
replace the local ones behind the client's :class:`~civitai_tui.civitai.politeness.Pacer`
interface (``api.requests_per_second`` for metadata, ``api.downloads_per_second``
for ``/api/download`` resolutions), the per-host connection slots the
downloader asks before opening a connection, and the fleet's SHA256 index of
placed files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from civitai_tui.config import Config
from civitai_tui.download.transfer import HostPool
from civitai_tui.fleet.egress import egress_of
from civitai_tui.fleet.keyid import KeyIds
from civitai_tui.fleet.link import LimitsLink
from civitai_tui.fleet.pacing import SharedRateLimiter
from civitai_tui.fleet.placements import FleetPlacements
from civitai_tui.fleet.settings import FleetSettings
from civitai_tui.fleet.slots import SharedHostSlots
from civitai_tui.net.proxy import ProxyRoutes

if TYPE_CHECKING:
    from civitai_tui.download.downloader import FileDownloader
    from civitai_tui.perf.optimizer import PerformanceOptimizer


class FleetLimits:
    """The API pacing, host connection budgets and placement index of one engine."""

    def __init__(
        self,
        redis: Redis,
        engine: str,
        token: Callable[[], str | None],
        *,
        requests_per_second: float,
        downloads_per_second: float,
        egress: Callable[[str], str],
        shared_roots: tuple[Path, ...],
        pool: Callable[[], HostPool | None],
        ceiling: Callable[[str], int],
        learned: Callable[[str], int | None],
    ) -> None:
        self._redis = redis
        self.link = LimitsLink()
        keys = KeyIds(redis, self.link, token)
        self.meta = SharedRateLimiter(redis, self.link, keys, engine, "meta", requests_per_second)
        self.downloads = SharedRateLimiter(
            redis, self.link, keys, engine, "download", downloads_per_second, burst=10
        )
        self.slots = SharedHostSlots(redis, self.link, engine, egress, pool, ceiling, learned)
        self.placements = FleetPlacements(redis, self.link, engine, shared_roots)

    def api_limiters(self) -> dict[str, SharedRateLimiter]:
        """The API client's pacers (the keywords of ``runtime_settings.api_limiters``)."""
        return {"limiter": self.meta, "download_limiter": self.downloads}

    async def start(self) -> None:
        await self.slots.start()

    async def stop(self) -> None:
        await self.slots.stop()
        for pacer in (self.meta, self.downloads):
            await pacer.settle()

    async def close(self) -> None:
        await self._redis.aclose()

    def snapshot(self) -> dict[str, Any]:
        """What ``fleet status`` and the Performance screen show about shared limits."""
        return {
            **self.link.snapshot(),
            "api": {
                name: {"rate": pacer.rate, "ceiling": pacer.max_rate, "engines": pacer.engines}
                for name, pacer in (("meta", self.meta), ("download", self.downloads))
            },
            "hosts": self.slots.snapshot(),
        }


def engine_limits(
    redis: Redis,
    fleet: FleetSettings,
    config: Config,
    token: Callable[[], str | None],
    routes: ProxyRoutes,
    optimizer: PerformanceOptimizer,
    downloader: Callable[[], FileDownloader | None],
) -> FleetLimits:
    """An engine's fleet limits from its ``api.*`` keys, ``fleet.*`` settings and optimizer.

    A host's want is the optimizer's budget, its ceiling the mode's per-host maximum,
    and a limit the optimizer learned from refusals is reported to the fleet.
    """

    def learned(host: str) -> int | None:
        probe = optimizer.probes.get(host)
        return probe.conn_limit if probe is not None else None

    def pool() -> HostPool | None:
        found = downloader()
        return found.pool if found is not None else None

    return FleetLimits(
        redis,
        fleet.name,
        token,
        requests_per_second=config.get("api.requests_per_second"),
        downloads_per_second=config.get("api.downloads_per_second"),
        egress=egress_of(fleet.egress, routes),
        shared_roots=fleet.shared_roots,
        pool=pool,
        ceiling=lambda _host: optimizer.config.connection_ceiling,
        learned=learned,
    )
