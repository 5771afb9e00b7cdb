"""Where things live and what the environment says: state dir, API origin, token.

Environment (DESIGN.md): ``CIVITAI_API_KEY`` (token), ``CIVITAI_BASE_URL`` (API
origin, default ``https://civitai.com``), ``CIVITAI_TUI_HOME`` (state dir; default
from platformdirs). The full TOML configuration with dotted keys arrives with the
bulk engine; this module owns only what every command needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

APP_NAME = "civitai-tui"
DEFAULT_BASE_URL = "https://civitai.com"


def state_dir() -> Path:
    """The state dir (config, databases, socket, logs), created with mode 0700."""
    env = os.environ.get("CIVITAI_TUI_HOME")
    path = Path(env).expanduser() if env else platformdirs.user_data_path(APP_NAME, appauthor=False)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@dataclass(frozen=True)
class Environment:
    """The settings read from the environment, once, at start."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> Environment:
        base = os.environ.get("CIVITAI_BASE_URL", "").strip() or DEFAULT_BASE_URL
        key = os.environ.get("CIVITAI_API_KEY", "").strip() or None
        return cls(base_url=base.rstrip("/"), api_key=key)
