"""The settings built from the config in more than one place: ``get``, the engine, the demo.

Each settings dataclass names its own keys (:mod:`civitai_tui.binding`); this
module adds what the config does not say (the quarantine's state dir) and the
API client's pacing. Light imports only: the CLI uses it for ``get`` without
loading the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from civitai_tui.binding import bound, from_config
from civitai_tui.civitai.client import ApiLimits
from civitai_tui.civitai.politeness import Pacer, RateLimiter
from civitai_tui.config import Config
from civitai_tui.download.settings import DownloadSettings, VerifySettings


def _set_ceiling(pacer: Pacer, rate: float) -> None:
    pacer.set_ceiling(rate)  # the pacer's own: a fleet-wide one updates its local share too


@dataclass
class ApiPacing:
    """The API client's pacing and size bounds (its keyword arguments), from ``api.*``."""

    #: Local limiters, or fleet-wide ones given in their place (``civitai_tui.fleet.pacing``).
    limiter: Pacer = bound(
        "api.requests_per_second",
        default_factory=RateLimiter,
        read=RateLimiter,
        update=_set_ceiling,
    )
    download_limiter: Pacer = bound(
        "api.downloads_per_second",
        default_factory=RateLimiter,
        read=lambda rate: RateLimiter(rate, burst=10),
        update=_set_ceiling,
    )
    limits: ApiLimits = field(default_factory=ApiLimits)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~civitai_tui.civitai.client.CivitAIClient`."""
        return {name: getattr(self, name) for name in ("limiter", "download_limiter", "limits")}


def download_settings(config: Config) -> DownloadSettings:
    """Per-file download settings from the ``download.*`` keys.

    Refused files go to the quarantine of the config's own state dir (the
    demo's, a test's), never to the default one.
    """
    return from_config(
        DownloadSettings, config, verify=VerifySettings(quarantine_base=config.path.parent)
    )


def api_options(config: Config) -> dict[str, Any]:
    """The API client's keyword arguments (pacing and size bounds) from the ``api.*`` keys."""
    return from_config(ApiPacing, config).client_options()
