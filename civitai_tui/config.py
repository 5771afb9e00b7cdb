"""Configuration: where things live, the environment, and the TOML settings file.

Environment (README, "Configuration"): ``CIVITAI_API_KEY`` (token), ``CIVITAI_BASE_URL`` (API
origin, default ``https://civitai.com``), ``CIVITAI_TUI_HOME`` (state dir; default
from platformdirs).

Settings live in ``<state dir>/config.toml`` under dotted keys
(``bulk.batch_size``, ``performance.max_connections``, ...). Every key is declared
once in :data:`OPTIONS` with its type, default, bounds and help; a value that
breaks the rules is refused with a :class:`ConfigError` naming the key and what
is allowed. Environment variables override the file:
``CIVITAI_TUI_BULK__BATCH_SIZE=3`` sets ``bulk.batch_size``. Writes keep the
file's comments (tomlkit). The settings dataclasses name the keys they read
(:mod:`civitai_tui.binding`).
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import tomlkit

from civitai_tui.atomic import write_atomic
from civitai_tui.civitai.layouts import check_template
from civitai_tui.download.disk import FREE_SPACE_RULES, parse_free_space
from civitai_tui.download.speed import parse_speed
from civitai_tui.errors import CivitaiTuiError, FailureKind

APP_NAME = "civitai-tui"
DEFAULT_BASE_URL = "https://civitai.com"
ENV_PREFIX = "CIVITAI_TUI_"


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


def check_min_free_space(value: str) -> None:
    """``download.min_free_space`` must parse (see ``download.disk.parse_free_space``)."""
    try:
        parse_free_space(value)
    except ValueError:
        raise CivitaiTuiError(
            FailureKind.BAD_CONFIG, f"{value!r} is not valid; expected {FREE_SPACE_RULES}"
        ) from None


class ConfigError(CivitaiTuiError):
    """A malformed config file, an unknown key or a value outside its rules."""

    def __init__(self, message: str) -> None:
        super().__init__(FailureKind.BAD_CONFIG, message)


@dataclass(frozen=True)
class Option:
    """One configuration key: its type, default, allowed values and meaning."""

    key: str
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    #: Further rules on the coerced value: raises ``CivitaiTuiError`` saying what is wrong.
    check: Callable[[Any], None] | None = None
    #: When a change takes effect: ``live`` (a running engine applies it at once),
    #: ``restart`` (read when the engine or the UI starts), ``command`` (read by each
    #: ``get``/``add`` run).
    applies: str = "live"
    #: Reads a text value (``20MB``) for a numeric option; its allowed values in ``words``.
    parse: Callable[[str], Any] | None = None
    words: str = ""
    #: What a value looks like when shown (values that may hold credentials).
    mask: Callable[[Any], Any] | None = None

    def shown(self, value: Any) -> Any:
        """``value`` as status, ``config get`` and the engine API show it."""
        return self.mask(value) if self.mask is not None and value else value

    def allowed(self) -> str:
        """The allowed values, in words."""
        if self.words:
            return self.words
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        words = {int: "an integer", float: "a number"}.get(self.kind, "text")
        if self.minimum is not None:
            words += f" >= {self.minimum:g}"
        if self.maximum is not None:
            words += (" and" if self.minimum is not None else "") + f" <= {self.maximum:g}"
        return words

    def coerce(self, raw: Any) -> Any:
        """``raw`` (a TOML value or a string from the shell) as this option's type."""
        try:
            value = self._convert(raw)
        except (TypeError, ValueError, OverflowError):
            message = f"{self.key}: {raw!r} is not valid; expected {self.allowed()}"
            raise ConfigError(message) from None
        if self.choices and value not in self.choices:
            raise ConfigError(f"{self.key}: {raw!r} is not allowed; expected {self.allowed()}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{self.key}: {raw!r} is too small; expected {self.allowed()}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{self.key}: {raw!r} is too large; expected {self.allowed()}")
        if self.check is not None:
            try:
                self.check(value)
            except CivitaiTuiError as exc:
                raise ConfigError(f"{self.key}: {exc.message}") from None
        return value

    def _convert(self, raw: Any) -> Any:
        if self.kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"true", "1", "yes", "on"}:
                return True
            if text in {"false", "0", "no", "off"}:
                return False
            raise ValueError(raw)
        if self.parse is not None and isinstance(raw, str):
            return self.parse(raw)
        if self.kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)  # int("nan") / int(float("inf")) raise
        if self.kind is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            number = float(raw)
            if not math.isfinite(number):  # nan slips past every bound check
                raise ValueError(raw)
            return number
        if not isinstance(raw, str):
            raise TypeError(raw)
        value = raw.strip()
        return value.lower() if self.choices else value


def _check_proxy(value: str) -> None:
    from civitai_tui.net.proxy import parse_proxy

    if value:  # empty: the environment's
        parse_proxy(value, "")


def _check_ca_bundle(value: str) -> None:
    from civitai_tui.net.tls import client_context

    if value:  # a bundle that does not load is refused here, not mid-download
        try:
            path = Path(value).expanduser()
        except RuntimeError as exc:  # ~user with no such user
            raise CivitaiTuiError(FailureKind.BAD_CONFIG, f"cannot use {value!r}: {exc}") from None
        client_context(path, source="")


def _check_fleet_url(value: str) -> None:
    from civitai_tui.fleet.connection import parse_fleet_url

    if value:  # empty: no fleet
        parse_fleet_url(value, "")


def _mask_fleet_url(value: str) -> str:
    from civitai_tui.fleet.connection import parse_fleet_url

    return parse_fleet_url(value, "fleet.url").display


def _mask_proxy(value: str) -> str:
    from civitai_tui.net.proxy import parse_proxy

    return parse_proxy(value, "network.proxy").display


def _options(*options: Option) -> dict[str, Option]:
    return {o.key: o for o in options}


MIB = 1024 * 1024

OPTIONS: dict[str, Option] = _options(
    # bulk queue
    Option("bulk.batch_size", int, 5, "Files per batch.", minimum=1, maximum=1000),
    Option("bulk.concurrent_batches", int, 2, "Batches run at once.", minimum=1, maximum=32),
    Option(
        "bulk.strategy",
        str,
        "adaptive",
        "How batches run: one after another, all at once, or sized from throughput and errors.",
        choices=("sequential", "parallel", "adaptive"),
    ),
    Option(
        "bulk.pause_between_batches",
        float,
        0.0,
        "Seconds between batches.",
        minimum=0,
        maximum=3600,
    ),
    Option(
        "bulk.max_files",
        int,
        10,
        "Files `get` downloads at once.",
        minimum=1,
        maximum=64,
        applies="command",
    ),
    Option(
        "bulk.layout",
        str,
        "flat",
        "Folder layout of the model library.",
        choices=("flat", "comfyui", "a1111", "template"),
    ),
    Option(
        "bulk.template",
        str,
        "{type}/{base_model}/{model_name}/{file_name}",
        "Folder template used when bulk.layout is 'template'.",
        check=check_template,
    ),
    Option(
        "bulk.dest",
        str,
        "",
        "Default destination folder (empty: ./ for `get`).",
        applies="command",
    ),
    Option("bulk.sidecars", bool, True, "Write <file name>.civitai.json beside each model."),
    Option(
        "bulk.dedupe",
        str,
        "link",
        "A file the library has elsewhere: hard link (else reflink, else copy), copy, "
        "or download it again.",
        choices=("link", "copy", "download"),
    ),
    Option("bulk.previews", bool, False, "Download a preview image beside each model."),
    Option(
        "bulk.preview_nsfw_level",
        int,
        1,
        "Highest NSFW level for previews (1 PG, 2 PG-13, 4 R, 8 X, 16 XXX).",
        minimum=1,
        maximum=31,
    ),
    # one file
    Option("download.connections", int, 8, "Connections per file.", minimum=1, maximum=64),
    Option(
        "download.min_split",
        int,
        1 * MIB,
        "Never split a range below this (bytes).",
        minimum=65536,
        maximum=1024 * MIB,
    ),
    Option(
        "download.checkpoint_seconds",
        float,
        2.0,
        "Resume state saved at least this often (s).",
        minimum=0.1,
        maximum=600,
    ),
    Option(
        "download.stall_timeout",
        float,
        30.0,
        "Drop a connection idle this long (s).",
        minimum=1,
        maximum=3600,
    ),
    Option(
        "download.min_free_space",
        str,
        "auto",
        "Free space a download leaves on its volume: auto = min(1 GiB, 2 % of the volume), "
        "a size (512MiB, 2GB, 0) or a share of the volume (5%).",
        check=check_min_free_space,
    ),
    Option(
        "download.max_attempts",
        int,
        8,
        "Tries per connection without forward progress before the file fails.",
        minimum=1,
        maximum=100,
    ),
    Option(
        "download.max_speed",
        int,
        0,
        "Overall speed limit (bytes/s; 20MB, 512KiB ...; 0: none), shared by running files.",
        minimum=0,
        parse=parse_speed,
        words="a speed such as 20MB, 512KiB or 1GB/s, or 0 for no limit",
    ),
    # performance optimizer
    Option(
        "performance.mode",
        str,
        "adaptive",
        "Optimizer mode.",
        choices=("speed", "efficiency", "minimal", "adaptive"),
    ),
    Option(
        "hooks.on_file_done",
        str,
        "",
        "Command run when a file lands (env: CIVITAI_TUI_FILE_PATH, …); empty: none.",
    ),
    Option(
        "hooks.on_job_done",
        str,
        "",
        "Command run when a job ends (env: CIVITAI_TUI_JOB_STATE, …); empty: none.",
    ),
    Option(
        "performance.cpu_threshold",
        float,
        75.0,
        "CPU % that sheds connections.",
        minimum=1,
        maximum=100,
    ),
    Option(
        "performance.memory_threshold",
        float,
        75.0,
        "Memory % that sheds connections.",
        minimum=1,
        maximum=100,
    ),
    Option(
        "performance.max_connections",
        int,
        64,
        "Connections per host, at most.",
        minimum=1,
        maximum=256,
    ),
    Option(
        "performance.min_chunk_size",
        int,
        64 * 1024,
        "Smallest read buffer (bytes; at most performance.max_chunk_size).",
        minimum=4096,
        maximum=256 * MIB,
    ),
    Option(
        "performance.max_chunk_size",
        int,
        4 * MIB,
        "Largest read buffer (bytes).",
        minimum=4096,
        maximum=256 * MIB,
    ),
    Option("performance.enable_adaptive_retry", bool, True, "Retry delays follow the network."),
    # API politeness
    Option(
        "api.requests_per_second",
        float,
        10.0,
        "Metadata API calls per second, at most (halved on 429/503, then regained).",
        minimum=0.1,
        maximum=100,
    ),
    Option(
        "api.downloads_per_second",
        float,
        100.0,
        "/api/download resolutions per second, at most (one per file).",
        minimum=0.1,
        maximum=1000,
    ),
    Option(
        "api.max_answer_mb",
        int,
        32,
        "Largest API answer read, after decompression (MiB): a gzip bomb stops there.",
        minimum=1,
        maximum=1024,
        applies="restart",
    ),
    Option(
        "api.max_listing_pages",
        int,
        1000,
        "Pages (100 models each) one user:/tag:/search: listing may take; more is an error.",
        minimum=1,
        maximum=100_000,
        applies="restart",
    ),
    # browse (mode 4 and `civitai-tui updates`)
    Option(
        "browse.cache_ttl",
        int,
        3600,
        "Seconds an API answer of Browse (search, model, hash lookup) is reused before "
        "asking CivitAI again.",
        minimum=0,
        maximum=30 * 86400,
    ),
    Option(
        "browse.nsfw_level",
        int,
        1,
        "Highest NSFW level of Browse previews (1 PG, 2 PG-13, 4 R, 8 X, 16 XXX).",
        minimum=1,
        maximum=31,
    ),
    # network (empty: from the environment; see civitai_tui.net)
    Option(
        "network.proxy",
        str,
        "",
        "Proxy for every request, e.g. http://host:3128 or socks5h://host:1080 "
        "(empty: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY).",
        check=_check_proxy,
        mask=_mask_proxy,
    ),
    Option(
        "network.no_proxy",
        str,
        "",
        "Hosts reached directly: names (with subdomains), IPs, CIDRs, * (empty: NO_PROXY).",
    ),
    Option(
        "network.ca_bundle",
        str,
        "",
        "PEM file (or hashed directory) of CA certificates trusted on top of the system's.",
        check=_check_ca_bundle,
    ),
    # fleet mode (docs/fleet.md): empty fleet.url is one engine with its own state.db
    Option(
        "fleet.url",
        str,
        "",
        "The fleet's Valkey/Redis server: redis://[user:password@]host[:port][/db], "
        "rediss://… or unix:///path (empty: no fleet; env CIVITAI_TUI_FLEET).",
        check=_check_fleet_url,
        mask=_mask_fleet_url,
        applies="restart",
    ),
    Option(
        "fleet.password_file",
        str,
        "",
        "File (chmod 600) holding the fleet server's password, instead of one in fleet.url.",
        applies="restart",
    ),
    Option(
        "fleet.name",
        str,
        "",
        "This engine's name in the fleet (empty: host name and state dir).",
        applies="restart",
    ),
    Option(
        "fleet.lease",
        float,
        30.0,
        "Seconds a file stays with an engine that stopped renewing it before another takes it.",
        minimum=1,
        maximum=3600,
        applies="restart",
    ),
    Option(
        "fleet.egress",
        str,
        "",
        "The address storage servers see this engine come from; engines giving the same name "
        "share per-host connection budgets (empty: public IP, proxy, else one shared NAT).",
        applies="restart",
    ),
    Option(
        "fleet.shared_roots",
        str,
        "",
        "Folders on storage every engine mounts at the same path, joined by ':'; files "
        "another engine placed there are linked or copied, not downloaded again.",
        applies="restart",
    ),
    # analytics
    Option("analytics.enabled", bool, True, "Record analytics events.", applies="restart"),
    Option(
        "analytics.anonymize_users",
        bool,
        False,
        "Pseudonymise creator names and ids.",
        applies="restart",
    ),
    Option(
        "analytics.retention_days",
        int,
        30,
        "Days of events kept.",
        minimum=1,
        maximum=36500,
        applies="restart",
    ),
    Option(
        "analytics.max_db_mb",
        int,
        500,
        "Size cap of analytics.db (MiB).",
        minimum=1,
        maximum=1 << 20,
        applies="restart",
    ),
    # engine
    Option(
        "engine.allowed_roots",
        str,
        "",
        "Folders a TCP control client may write into, joined by ':' (empty: home and bulk.dest).",
    ),
    # user interface
    Option("ui.theme", str, "civitai-dark", "Theme name.", applies="restart"),
    Option(
        "ui.refresh_hz",
        float,
        5.0,
        "Table refreshes per second.",
        minimum=0.5,
        maximum=30,
        applies="restart",
    ),
    Option(
        "ui.notify_done",
        str,
        "toast",
        "How the UI announces a finished job: a toast, plus the terminal bell or a "
        "desktop notification (OSC 9), or nothing.",
        choices=("off", "toast", "bell", "desktop"),
        applies="restart",
    ),
)


#: Pairs of keys where the first may not exceed the second.
ORDERED_KEYS = (("performance.min_chunk_size", "performance.max_chunk_size"),)


def _check_together(values: Mapping[str, Any]) -> None:
    """Refuse values that are each allowed but contradict each other."""
    for low, high in ORDERED_KEYS:
        if values[low] > values[high]:
            raise ConfigError(
                f"{low} ({values[low]}) may not exceed {high} ({values[high]}); "
                "change one of them first"
            )


#: Environment names read for a key besides ``CIVITAI_TUI_<SECTION>__<NAME>``.
ENV_ALIASES = {"fleet.url": "CIVITAI_TUI_FLEET"}


def _env_name(key: str) -> str:
    section, name = key.split(".", 1)
    return f"{ENV_PREFIX}{section.upper()}__{name.upper()}"


def option(key: str) -> Option:
    """The :class:`Option` for ``key``, or a ConfigError listing close keys."""
    try:
        return OPTIONS[key]
    except KeyError:
        section = key.split(".", 1)[0]
        near = [k for k in OPTIONS if k.startswith(section + ".")] or list(OPTIONS)
        raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(near)}") from None


Listener = Callable[[str, Any], None]


class Config:
    """The settings in force: defaults, then the TOML file, then the environment."""

    def __init__(self, path: Path, values: Mapping[str, Any], env_keys: frozenset[str]) -> None:
        self.path = path
        self._values = dict(values)
        self._env_keys = env_keys
        self._listeners: list[Listener] = []

    @classmethod
    def load(cls, path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
        """Read ``path`` (default ``<state dir>/config.toml``) and the environment."""
        path = path or state_dir() / "config.toml"
        environ = os.environ if environ is None else environ
        values = {key: opt.default for key, opt in OPTIONS.items()}
        values.update(_read_file(path))
        env_keys = set()
        for key, opt in OPTIONS.items():
            for name in (ENV_ALIASES.get(key), _env_name(key)):
                raw = environ.get(name) if name else None
                if raw is not None:
                    try:
                        values[key] = opt.coerce(raw)
                    except ConfigError as exc:
                        raise ConfigError(f"environment {name}: {exc.message}") from None
                    env_keys.add(key)
        _check_together(values)
        return cls(path, values, frozenset(env_keys))

    def get(self, key: str) -> Any:
        option(key)
        return self._values[key]

    def set(self, key: str, raw: Any, *, persist: bool = True) -> Any:
        """Validate and set ``key``; write it to the file unless ``persist`` is False."""
        value = option(key).coerce(raw)
        _check_together({**self._values, key: value})
        if persist:
            _write_key(self.path, key, value)
        self._values[key] = value
        for listener in list(self._listeners):
            listener(key, value)
        return value

    def overridden_by_env(self, key: str) -> bool:
        return key in self._env_keys

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(key, value)`` after every ``set``."""
        self._listeners.append(listener)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def shown(self) -> dict[str, Any]:
        """Every value as it may be shown: credentials masked (``Option.mask``)."""
        return {key: OPTIONS[key].shown(value) for key, value in self._values.items()}


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix or delete the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    values: dict[str, Any] = {}
    for section, table in data.items():
        if section == "keymap":  # free-form table read by the TUI
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section!r} must be a [section] table")
        for name, raw in table.items():
            key = f"{section}.{name}"
            try:
                values[key] = option(key).coerce(raw)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc.message}") from None
    return values


def _write_key(path: Path, key: str, value: Any) -> None:
    section, name = key.split(".", 1)
    doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    table = doc.get(section)
    if table is None:
        table = tomlkit.table()
        doc[section] = table
    table[name] = value
    write_atomic(path, tomlkit.dumps(doc).encode("utf-8"), mode=0o600)
