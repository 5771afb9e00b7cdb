"""The one place where config keys become the runtime settings objects of each part.

``download.*`` → :class:`DownloadSettings`, ``bulk.*`` → :class:`BatchConfig`,
``analytics.*`` → :class:`AnalyticsSettings`, ``api.*`` → the client's rate
limiters. Light imports only: the CLI uses it for ``get`` without loading the
engine.
"""

from __future__ import annotations

import dataclasses

from civitai_tui.analytics.settings import AnalyticsSettings
from civitai_tui.bulk.batches import BatchConfig, BatchStrategy
from civitai_tui.civitai.client import ApiLimits
from civitai_tui.civitai.politeness import RateLimiter
from civitai_tui.config import Config
from civitai_tui.download.disk import parse_free_space
from civitai_tui.download.retry import RetryPolicy
from civitai_tui.download.settings import DownloadSettings, VerifySettings

MIB = 1024 * 1024


def batch_config(config: Config) -> BatchConfig:
    """The batch knobs from the ``bulk.*`` keys."""
    return BatchConfig(
        batch_size=config.get("bulk.batch_size"),
        concurrent_batches=config.get("bulk.concurrent_batches"),
        strategy=BatchStrategy(config.get("bulk.strategy")),
        pause_between_batches=config.get("bulk.pause_between_batches"),
    )


def download_settings(config: Config) -> DownloadSettings:
    """Per-file download settings from the ``download.*`` keys.

    Refused files go to the quarantine of the config's own state dir (the
    demo's, a test's), never to the default one.
    """
    settings = dataclasses.replace(
        DownloadSettings(),
        verify=VerifySettings(quarantine_base=config.path.parent),
        connections=config.get("download.connections"),
        min_split=config.get("download.min_split"),
        min_free_space=parse_free_space(config.get("download.min_free_space")),
        checkpoint_seconds=config.get("download.checkpoint_seconds"),
        stall_timeout=config.get("download.stall_timeout"),
        retry=RetryPolicy(max_attempts=config.get("download.max_attempts")),
    )
    settings.speed.set_overall(config.get("download.max_speed"))
    return settings


def api_limiters(config: Config) -> dict[str, RateLimiter]:
    """The API client's pacing from the ``api.*`` keys (keyword arguments of the client)."""
    return {
        "limiter": RateLimiter(config.get("api.requests_per_second")),
        "download_limiter": RateLimiter(config.get("api.downloads_per_second"), burst=10),
    }


def api_limits(config: Config) -> ApiLimits:
    """The API client's size bounds from the ``api.*`` keys."""
    return ApiLimits(
        max_body=config.get("api.max_answer_mb") * MIB,
        max_pages=config.get("api.max_listing_pages"),
    )


def analytics_settings(config: Config) -> AnalyticsSettings:
    """The collector's settings from the ``analytics.*`` keys."""
    return AnalyticsSettings(
        enabled=config.get("analytics.enabled"),
        anonymize_users=config.get("analytics.anonymize_users"),
        retention_days=config.get("analytics.retention_days"),
        max_db_bytes=config.get("analytics.max_db_mb") * MIB,
    )
