"""Our themes as data: TOML files turned into Textual themes, plus the custom variables.

A theme file looks like::

    name = "civitai-dark"
    dark = true
    [colors]            # any textual.theme.Theme colour: primary, background, ...
    primary = "#4c8dff"
    [variables]         # our own TCSS variables (see DEFAULT_VARIABLES)
    state-paused = "#e0a030"

The built-in files live next to this module; users add theirs in
``<state dir>/themes/*.toml``. A broken file is reported, never fatal.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

BUILTIN_DIR = Path(__file__).parent / "themes"
COLOR_FIELDS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
#: Our TCSS variables with the value used when a theme does not set them
#: (Textual's built-in themes, a user theme that only sets colours).
DEFAULT_VARIABLES: dict[str, str] = {
    "state-pending": "#8a8f98",
    "state-processing": "#4c8dff",
    "state-paused": "#e0a030",
    "state-completed": "#3fb950",
    "state-failed": "#f85149",
    "state-cancelled": "#6e7681",
    "graph-throughput": "#4c8dff",
    "graph-cpu": "#f0883e",
    "graph-memory": "#a371f7",
    "graph-engine": "#3fb950",
    "graph-connections": "#39c5cf",
    "graph-job-1": "#e3b341",
    "graph-job-2": "#db61a2",
    "graph-job-3": "#56d364",
}
#: One line colour per job on the throughput graph (distinct from the total's).
JOB_GRAPH_VARIABLES = ("graph-job-1", "graph-job-2", "graph-job-3")


@dataclass
class ThemeLoad:
    """The themes read from some directories, and what was wrong with the rest."""

    themes: list[Theme] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def theme_from_toml(path: Path) -> Theme:
    """Read one theme file; ValueError says what is wrong with it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path.name}: cannot be read ({exc})") from None
    name = data.get("name")
    colors = data.get("colors", {})
    variables = data.get("variables", {})
    if not isinstance(name, str) or not name:
        raise ValueError(f"{path.name}: 'name' must be a non-empty string")
    if not isinstance(colors, dict) or "primary" not in colors:
        raise ValueError(f"{path.name}: a [colors] table with at least 'primary' is required")
    if not isinstance(variables, dict):
        raise ValueError(f"{path.name}: [variables] must be a table")
    unknown = set(colors) - set(COLOR_FIELDS)
    if unknown:
        raise ValueError(f"{path.name}: unknown colour(s) {', '.join(sorted(unknown))}")
    for key, value in {**colors, **variables}.items():
        _check_color(path, key, value)
    return Theme(
        name=name,
        dark=bool(data.get("dark", True)),
        variables={str(k): str(v) for k, v in variables.items()},
        **{k: str(v) for k, v in colors.items()},
    )


def _check_color(path: Path, key: str, value: Any) -> None:
    try:
        Color.parse(str(value))
    except ColorParseError:
        raise ValueError(f"{path.name}: {key} = {value!r} is not a colour") from None


def load_themes(directories: Iterable[Path]) -> ThemeLoad:
    """Every ``*.toml`` theme in ``directories`` (later ones override by name)."""
    result = ThemeLoad()
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                result.themes.append(theme_from_toml(path))
            except ValueError as exc:
                result.errors.append(str(exc))
    return result
