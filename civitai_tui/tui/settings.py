"""The TUI's own settings: theme, refresh rate, ``[keymap]`` and ``bulk.dest`` from ``config.toml``.

A broken file never stops the UI: the defaults are used and the problem is
returned as a warning for the app to show.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from civitai_tui.binding import bound, from_config
from civitai_tui.config import OPTIONS, Config, ConfigError

USER_THEMES = "themes"
NSFW_LEVEL = "browse.nsfw_level"


@dataclass(frozen=True)
class UISettings:
    """What the app needs at start."""

    state_dir: Path
    theme: str = bound("ui.theme", OPTIONS["ui.theme"].default)
    refresh_hz: float = bound("ui.refresh_hz", OPTIONS["ui.refresh_hz"].default)
    notify_done: str = bound("ui.notify_done", OPTIONS["ui.notify_done"].default)
    keymap: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    #: ``bulk.dest``: the add dialog's destination when its field is empty ("" = the cwd).
    dest: str = bound("bulk.dest", OPTIONS["bulk.dest"].default)
    #: ``browse.nsfw_level``: Browse shows no preview above this NSFW level.
    nsfw_level: int = bound(NSFW_LEVEL, OPTIONS[NSFW_LEVEL].default)

    @property
    def theme_dirs(self) -> tuple[Path, ...]:
        from civitai_tui.tui.themes import BUILTIN_DIR

        return (BUILTIN_DIR, self.state_dir / USER_THEMES)

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"


def load_ui_settings(state_dir: Path) -> UISettings:
    """Read ``<state_dir>/config.toml``; problems become ``warnings``."""
    path = state_dir / "config.toml"
    warnings: list[str] = []
    try:
        config: Config | None = Config.load(path)
    except ConfigError as err:
        config = None
        warnings.append(f"{err.message}; using the default UI settings")
    keymap = _read_keymap(path, warnings)
    given = {"state_dir": state_dir, "keymap": keymap, "warnings": tuple(warnings)}
    return UISettings(**given) if config is None else from_config(UISettings, config, **given)


def _read_keymap(path: Path, warnings: list[str]) -> dict[str, str]:
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("keymap", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}  # reported by Config.load already (or no file)
    if not isinstance(table, dict):
        warnings.append('[keymap] must be a table of binding-id = "keys"')
        return {}
    keymap = {k: v for k, v in table.items() if isinstance(v, str)}
    bad = sorted(set(table) - set(keymap))
    if bad:
        warnings.append(f'[keymap]: {", ".join(bad)} must be strings like "ctrl+x,f5"')
    return keymap
