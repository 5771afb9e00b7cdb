"""The engine: one event bus and the parts that publish to it, wired from the config.

It owns the bus, the :class:`BulkDownloadManager`, the
:class:`PerformanceOptimizer` (which tunes the manager's downloader) and the live
configuration: a ``config set`` of a ``live`` key through the control API reaches
the running parts at once (:func:`civitai_tui.binding.apply` on the settings they
hold); ``restart`` keys are read here at start. The
control API server and the process management live in
:mod:`civitai_tui.engine.server` and :mod:`civitai_tui.engine.process`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

from civitai_tui.analytics.analyzer import AnalyticsAnalyzer
from civitai_tui.analytics.collector import AnalyticsCollector
from civitai_tui.analytics.reports import ReportGenerator
from civitai_tui.analytics.schema import DB_NAME
from civitai_tui.analytics.settings import AnalyticsSettings
from civitai_tui.analytics.summary import AnalyticsReport
from civitai_tui.binding import apply, from_config, keys_of
from civitai_tui.browse.service import Browser, BrowseSettings
from civitai_tui.bulk.batches import BatchConfig
from civitai_tui.bulk.manager import BulkDownloadManager, ManagerSettings
from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.civitai.politeness import Backoff
from civitai_tui.config import OPTIONS, Config, Environment
from civitai_tui.credentials import TokenKeeper
from civitai_tui.engine.hooks import Hooks, JobFacts
from civitai_tui.errors import CivitaiTuiError
from civitai_tui.events import EventBus
from civitai_tui.fleet.connection import FleetUrl
from civitai_tui.fleet.limits import FleetLimits, engine_limits
from civitai_tui.fleet.queue import FleetQueue
from civitai_tui.fleet.settings import FleetSettings
from civitai_tui.fleet.worker import FleetWorker
from civitai_tui.net.network import Network, install
from civitai_tui.net.policy import UrlPolicy
from civitai_tui.net.policy import install as install_policy
from civitai_tui.perf.config import OptimizationConfig
from civitai_tui.perf.controls import DownloaderControls
from civitai_tui.perf.memory import FILE_NAME as HOST_MEMORY_FILE
from civitai_tui.perf.memory import HostMemory
from civitai_tui.perf.optimizer import PerformanceOptimizer
from civitai_tui.perf.session import create_optimized_session
from civitai_tui.runtime_settings import ApiPacing, download_settings

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 6 * 3600


class Engine:
    """Everything that runs in the long-lived engine process."""

    def __init__(
        self,
        state_dir: Path,
        *,
        config: Config | None = None,
        environment: Environment | None = None,
        allow_http: bool = False,
    ) -> None:
        self.state_dir = state_dir
        self.config = config or Config.load(state_dir / "config.toml")
        env = environment or Environment.from_env()
        install_policy(UrlPolicy.for_origin(env.base_url))
        #: Proxies and TLS trust of every request the engine makes (``network.*``, environment).
        self.network = install(Network.from_config(self.config))
        #: The API token: this process's environment, the credentials file, or handed over.
        self.credentials = TokenKeeper(state_dir, env.api_key)
        #: Fleet mode (``fleet.*``): None url means this engine works alone from state.db.
        self.fleet = FleetSettings.from_config(self.config, state_dir)
        self.fleet_worker: FleetWorker | None = None
        self.bus = EventBus()
        self.optimizer = PerformanceOptimizer(
            self.bus,
            DownloaderControls(lambda: self.manager.downloader),
            from_config(OptimizationConfig, self.config),
            HostMemory(state_dir / HOST_MEMORY_FILE),
        )
        #: Fleet mode: API pacing, host budgets and dedupe shared with the other engines.
        self.fleet_limits = self._fleet_limits()
        shared = self.fleet_limits.api_limiters() if self.fleet_limits else {}
        #: The API client's pacing (``api.*``), shared with the manager's client (and, in
        #: fleet mode, with every engine using the same key).
        self.api = from_config(ApiPacing, self.config, **shared)
        self.manager = BulkDownloadManager(
            from_config(
                ManagerSettings,
                self.config,
                state_dir=state_dir,
                base_url=env.base_url,
                api_key=self.credentials,
                allow_http=allow_http,
                download=dataclasses.replace(
                    download_settings(self.config),
                    stream_observer=self.optimizer.health.record_stream,
                ),
                client_options=self.api.client_options(),
            ),
            bus=self.bus,
            batch=from_config(BatchConfig, self.config),
            session_factory=lambda: create_optimized_session(self.optimizer),
        )
        #: Browse: search, details, previews and the library's update check.
        self.browser = Browser(
            state_dir,
            CivitAIClient(
                env.base_url,
                self.credentials,
                allow_http=allow_http,
                # Someone is waiting on the screen: retry briefly, `r` retries again.
                backoff=Backoff(attempts=3, base=0.5, cap=10.0),
                **self.manager.settings.client_options,  # one API budget with the queue
            ),
            from_config(BrowseSettings, self.config),
            allow_http=allow_http,
        )
        if self.fleet_limits is not None:
            self.manager.settings.download.shared_budget = self.fleet_limits.slots
            self.manager.placements = self.fleet_limits.placements
        self.hooks = Hooks(self.config, self._job_facts)
        self.bus.add_callback(self.hooks)
        self.manager.settings.download.speed.job_rate = self._job_speed
        self.optimizer.set_rate_cap(self.config.get("download.max_speed"))
        self.config.on_change(self._apply)
        self._stopped = asyncio.Event()
        self.analytics: AnalyticsCollector | None = None
        self._housekeeping: asyncio.Task[None] | None = None

    async def start(self) -> None:
        log.info("network: proxy %(proxy)s, CAs %(ca_bundle)s", self.network.describe())
        settings = from_config(AnalyticsSettings, self.config)
        if settings.enabled:
            self.analytics = AnalyticsCollector(
                self.state_dir / DB_NAME, settings, key_dir=self.state_dir
            )
            self.analytics.attach(self.bus)
            self._housekeeping = asyncio.create_task(self._clean_analytics_forever())
        await self.manager.start()
        await self.browser.start()
        await self.optimizer.start()
        if self.fleet_limits is not None:
            await self.fleet_limits.start()
        if self.fleet.url is not None:
            await self._join_fleet(self.fleet.url)

    async def _join_fleet(self, url: FleetUrl) -> None:
        """Work from the fleet's queue too (``fleet.url``); an unreachable server is said
        in the log and retried, never fatal."""
        self.fleet_worker = FleetWorker(
            FleetQueue(url.client(self.config.get("network.ca_bundle"))),
            self.fleet,
            downloader=lambda: self.manager.downloader,
            bus=self.bus,
            slots=self.manager.batch.batch_size,
            state_dir=self.state_dir,
            checkpoint_seconds=self.manager.settings.download.checkpoint_seconds,
        )
        log.info("fleet: joining %s as %s", url, self.fleet.name)
        await self.fleet_worker.start()

    async def stop(self) -> None:
        if self.fleet_worker is not None:
            await self.fleet_worker.stop()
        await self.optimizer.stop()
        await self.manager.stop()
        await self.browser.close()
        if self.fleet_limits is not None:
            await self.fleet_limits.stop()  # hands back its connection slots
            await self.fleet_limits.close()
        await self.hooks.close()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self.analytics is not None:
            await asyncio.to_thread(self.analytics.close)

    def _fleet_limits(self) -> FleetLimits | None:
        """The limits shared with the fleet (None: a lone engine keeps its own)."""
        if self.fleet.url is None:
            return None
        return engine_limits(
            self.fleet.url.client(self.config.get("network.ca_bundle")),
            self.fleet,
            self.config,
            self.credentials,
            self.network.routes,
            self.optimizer,
            lambda: self.manager.downloader,
        )

    def _job_facts(self, job_id: str) -> JobFacts | None:
        """A finished job's name and the paths of its files in place (for hooks)."""
        try:
            job = self.manager.get(job_id)
        except CivitaiTuiError:
            return None
        return JobFacts(job.name, tuple(f.path for f in job.files if f.path))

    def analyze(self, days: int) -> AnalyticsReport:
        """The analyzer's view of the last ``days`` days (flushes pending events first)."""
        if self.analytics is not None:
            self.analytics.flush()
        return AnalyticsAnalyzer(self.state_dir / DB_NAME).analyze_days(days)

    def write_report(self, output: Path, fmt: str, days: int) -> Path:
        """Write an HTML, JSON or PDF report of the last ``days`` days to ``output``."""
        return ReportGenerator(self.analyze(days)).write(output.expanduser(), fmt)

    async def _clean_analytics_forever(self) -> None:
        """Retention: drop old analytics rows at start and every few hours."""
        assert self.analytics is not None
        while True:
            try:
                await asyncio.to_thread(self.analytics.cleanup)
            except Exception:  # housekeeping must never take the engine down
                log.exception("analytics cleanup failed")
            await asyncio.sleep(HOUSEKEEPING_SECONDS)

    def request_stop(self) -> None:
        """Ask the process running the engine to stop (signals, ``engine stop``)."""
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def _job_speed(self, job_id: str) -> int | None:
        """A job's own speed limit (``add --max-speed``), read when its first file starts."""
        try:
            return self.manager.get(job_id).options.max_speed
        except CivitaiTuiError:  # not a job of this engine (a `get` run): no own limit
            return None

    def _apply(self, key: str, _value: Any) -> None:
        """A changed ``live`` key to the running parts; other keys wait for a restart."""
        if OPTIONS[key].applies != "live":
            log.info("config %s changed; takes effect at the next start", key)
            return
        if apply(self.manager.batch, self.config, key) | apply(
            self.manager.settings, self.config, key
        ):
            self.manager.kick()
        apply(self.api, self.config, key)
        apply(self.browser.settings, self.config, key)
        if key in keys_of(OptimizationConfig):
            self.optimizer.update_config(from_config(OptimizationConfig, self.config))
        if key == "download.max_speed":  # the optimizer probes within the limit
            self.optimizer.set_rate_cap(self.config.get(key))
        if key.startswith("network."):  # new connections take it; open ones finish their request
            self.network = install(Network.from_config(self.config))
        log.info("config %s changed", key)
