"""The ``fleet.*`` settings an engine reads once at start."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from civitai_tui.config import Config
from civitai_tui.fleet.connection import FleetUrl, fleet_url
from civitai_tui.fleet.placements import parse_roots


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
    #: The address storage servers see (``fleet.egress``; "": found, docs/fleet-limits.md).
    egress: str = ""
    #: Folders every engine mounts at the same path (``fleet.shared_roots``): fleet dedupe.
    shared_roots: tuple[Path, ...] = ()

    @classmethod
    def from_config(cls, config: Config, state_dir: Path) -> FleetSettings:
        name = config.get("fleet.name") or f"{socket.gethostname()}:{state_dir}"
        return cls(
            fleet_url(config),
            name,
            config.get("fleet.lease"),
            config.get("fleet.password_file"),
            config.get("fleet.egress").strip(),
            parse_roots(config.get("fleet.shared_roots")),
        )
