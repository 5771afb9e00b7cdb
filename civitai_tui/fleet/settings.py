"""The ``fleet.*`` settings an engine reads once at start."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from civitai_tui.config import Config
from civitai_tui.fleet.connection import FleetUrl, fleet_url


@dataclass(frozen=True)
class FleetSettings:
    """Whether and how this engine works in a fleet (``url`` None: a lone engine)."""

    url: FleetUrl | None
    #: This engine's name in the fleet: ``fleet.name``, else host name and state dir.
    name: str
    #: Seconds an engine's files stay its own without a renewal (``fleet.lease``).
    lease: float
    #: Where the password came from: ``fleet.password_file``'s path, or "" (URL or none).
    password_file: str = ""

    @classmethod
    def from_config(cls, config: Config, state_dir: Path) -> FleetSettings:
        name = config.get("fleet.name") or f"{socket.gethostname()}:{state_dir}"
        return cls(
            fleet_url(config), name, config.get("fleet.lease"), config.get("fleet.password_file")
        )
