"""Every config key does something: live keys change the running engine, the rest at restart.

The table below must name every key of ``config keys``; a new key without an
effect (or without a probe here) fails :func:`test_every_key_has_a_probe`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from click.testing import CliRunner

from civitai_tui.analytics.settings import AnalyticsSettings
from civitai_tui.binding import keys_of
from civitai_tui.browse.service import BrowseSettings
from civitai_tui.bulk.batches import BatchConfig
from civitai_tui.bulk.manager import ManagerSettings
from civitai_tui.bulk.placement import LibrarySettings
from civitai_tui.cli import _get_options, main
from civitai_tui.config import OPTIONS, Config, Environment
from civitai_tui.download.settings import DownloadSettings
from civitai_tui.engine.core import Engine
from civitai_tui.engine.remote import parse_roots
from civitai_tui.perf.config import OptimizationConfig
from civitai_tui.runtime_settings import ApiPacing
from civitai_tui.tui.settings import UISettings, load_ui_settings

MIB = 1024 * 1024
NO_FLAGS = {
    "all_versions": False,
    "limit": None,
    "types": (),
    "base_models": (),
    "sort": None,
    "period": None,
    "nsfw": None,
    "all_files": False,
    "formats": (),
}

Probe = Callable[[Engine], Any]

#: A CA file for ``network.ca_bundle`` (the engine loads it when the key is set).
PRIVATE_CA = Path(tempfile.mkdtemp(prefix="civitai-test-ca-")) / "ca.pem"
trustme.CA().cert_pem.write_to_path(str(PRIVATE_CA))


def _manager(attr: str) -> Probe:
    return lambda e: getattr(e.manager.settings, attr)


def _batch(attr: str) -> Probe:
    return lambda e: getattr(e.manager.batch, attr)


def _download(attr: str) -> Probe:
    return lambda e: getattr(e.manager.settings.download, attr)


def _optimizer(attr: str) -> Probe:
    return lambda e: getattr(e.optimizer.config, attr)


def _limiter(name: str) -> Probe:
    return lambda e: e.manager.settings.client_options[name].max_rate


def _get(attr: str) -> Probe:
    return lambda e: getattr(_get_options(e.config, NO_FLAGS, None, None, False, tuned=True), attr)


def _analytics(attr: str) -> Probe:
    return lambda e: None if e.analytics is None else getattr(e.analytics.settings, attr)


def _ui(attr: str) -> Probe:
    return lambda e: getattr(load_ui_settings(e.state_dir), attr)


#: key -> (a value other than the default, what shows the engine (or CLI, or UI) uses it)
EFFECTS: dict[str, tuple[Any, Probe]] = {
    "bulk.batch_size": (3, _batch("batch_size")),
    "bulk.concurrent_batches": (4, _batch("concurrent_batches")),
    "bulk.strategy": ("parallel", lambda e: str(e.manager.batch.strategy)),
    "bulk.pause_between_batches": (1.5, _batch("pause_between_batches")),
    "bulk.max_files": (3, _get("max_files")),
    "bulk.layout": ("comfyui", _manager("layout")),
    "bulk.template": ("{type}/{file_name}", _manager("template")),
    "bulk.dest": ("/srv/models", lambda e: str(_get("plan")(e).dest)),
    "bulk.sidecars": (False, _manager("sidecars")),
    "bulk.dedupe": ("copy", _manager("dedupe")),
    "bulk.previews": (True, _manager("previews")),
    "bulk.preview_nsfw_level": (4, _manager("preview_nsfw_level")),
    "download.connections": (2, _download("connections")),
    "download.min_split": (2 * MIB, _download("min_split")),
    "download.min_free_space": ("5%", _download("min_free_space")),
    "download.checkpoint_seconds": (5.0, _download("checkpoint_seconds")),
    "download.stall_timeout": (10.0, _download("stall_timeout")),
    "download.max_attempts": (2, lambda e: e.manager.settings.download.retry.max_attempts),
    "download.max_speed": (
        "20MB",
        lambda e: (e.manager.settings.download.speed.overall.rate, e.optimizer.rate_cap),
    ),
    "hooks.on_file_done": ("/bin/true", lambda e: e.hooks.config.get("hooks.on_file_done")),
    "hooks.on_job_done": ("/bin/true", lambda e: e.hooks.config.get("hooks.on_job_done")),
    "performance.mode": ("speed", lambda e: str(e.optimizer.config.mode)),
    "performance.cpu_threshold": (50.0, _optimizer("cpu_threshold")),
    "performance.memory_threshold": (50.0, _optimizer("memory_threshold")),
    "performance.max_connections": (8, _optimizer("max_connections")),
    "performance.min_chunk_size": (128 * 1024, _optimizer("min_chunk_size")),
    "performance.max_chunk_size": (8 * MIB, _optimizer("max_chunk_size")),
    "performance.enable_adaptive_retry": (False, _optimizer("enable_adaptive_retry")),
    "api.requests_per_second": (2.0, _limiter("limiter")),
    "api.downloads_per_second": (5.0, _limiter("download_limiter")),
    "api.max_answer_mb": (8, lambda e: e.manager.settings.client_options["limits"].max_body),
    "api.max_listing_pages": (3, lambda e: e.manager.settings.client_options["limits"].max_pages),
    "browse.cache_ttl": (60, lambda e: e.browser.settings.cache_ttl),
    "browse.nsfw_level": (4, lambda e: e.browser.settings.nsfw_level),
    "engine.allowed_roots": (
        "/srv/a:/srv/b",
        lambda e: parse_roots(e.config.get("engine.allowed_roots"), e.config.get("bulk.dest")),
    ),
    "network.proxy": ("socks5h://127.0.0.1:1080", lambda e: e.network.routes.describe()),
    "network.no_proxy": ("example.com", lambda e: e.network.routes.no_proxy),
    "network.ca_bundle": (str(PRIVATE_CA), lambda e: e.network.ca_bundle),
    "fleet.url": ("unix:///nonexistent/fleet.sock", lambda e: e.fleet.url),
    "fleet.password_file": ("/nonexistent/fleet.pw", lambda e: e.fleet.password_file),
    "fleet.name": ("node-a", lambda e: e.fleet.name),
    "fleet.lease": (5.0, lambda e: e.fleet.lease),
    "fleet.egress": ("office", lambda e: e.fleet.egress),
    "fleet.shared_roots": ("/mnt/nas", lambda e: e.fleet.shared_roots),
    "analytics.enabled": (False, lambda e: e.analytics is not None),
    "analytics.anonymize_users": (True, _analytics("anonymize_users")),
    "analytics.retention_days": (7, _analytics("retention_days")),
    "analytics.max_db_mb": (50, _analytics("max_db_bytes")),
    "ui.theme": ("civitai-light", _ui("theme")),
    "ui.refresh_hz": (2.0, _ui("refresh_hz")),
    "ui.notify_done": ("bell", _ui("notify_done")),
}


WHEN = {"; on restart)": "restart", "; per command)": "command"}


def listed_keys() -> dict[str, str]:
    """Every key ``config keys`` prints, with when it applies (live, restart, command)."""
    result = CliRunner().invoke(main, ["config", "keys"])
    assert result.exit_code == 0, result.output
    return {
        line.split(" = ", 1)[0]: next((w for end, w in WHEN.items() if line.endswith(end)), "live")
        for line in result.output.splitlines()
    }


def test_every_listed_key_has_a_probe() -> None:
    keys = listed_keys()
    assert set(keys) == set(EFFECTS) == set(OPTIONS)
    assert keys == {key: opt.applies for key, opt in OPTIONS.items()}
    for key, (value, _) in EFFECTS.items():
        assert OPTIONS[key].coerce(value) != OPTIONS[key].default, key


#: Every settings class bound to config keys (civitai_tui.binding).
SETTINGS = (
    AnalyticsSettings,
    ApiPacing,
    BatchConfig,
    BrowseSettings,
    DownloadSettings,
    LibrarySettings,
    ManagerSettings,
    OptimizationConfig,
    UISettings,
)


def test_settings_bind_only_declared_keys() -> None:
    """A misspelt key in a ``bound`` field fails here, not as a KeyError at start."""
    for cls in SETTINGS:
        assert keys_of(cls), cls
        assert keys_of(cls) <= set(OPTIONS), (cls, keys_of(cls) - set(OPTIONS))


def make_engine(home: Path, config: str | None = "") -> Engine:
    """An engine for ``home`` with ``config`` as its file (None: keep the file there)."""
    home.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (home / "config.toml").write_text(config)
    return Engine(
        home,
        config=Config.load(home / "config.toml", environ={}),
        environment=Environment("http://127.0.0.1:9"),
    )


LIVE = [k for k, o in OPTIONS.items() if o.applies != "restart"]
RESTART = [k for k, o in OPTIONS.items() if o.applies == "restart"]


@pytest.mark.parametrize("key", LIVE)
async def test_live_and_per_command_keys_reach_the_running_parts(key: str, tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "state")
    value, probe = EFFECTS[key]
    before = probe(engine)
    engine.config.set(key, value)
    after = probe(engine)
    assert after != before, f"{key} changed nothing ({before!r})"
    assert probe(make_engine(tmp_path / "state", None)) == after  # and it was saved


@pytest.mark.parametrize("key", RESTART)
async def test_restart_keys_take_effect_when_the_engine_starts(key: str, tmp_path: Path) -> None:
    value, probe = EFFECTS[key]
    section, name = key.split(".", 1)
    toml = f"[{section}]\n{name} = {value!r}\n".replace("True", "true").replace("False", "false")
    seen = []
    for home, text in ((tmp_path / "default", ""), (tmp_path / "changed", toml)):
        engine = make_engine(home, text)
        await engine.start()
        try:
            seen.append(probe(engine))
        finally:
            await engine.stop()
    assert seen[0] != seen[1], f"{key} changed nothing at start ({seen[0]!r})"


ENGINE_RESTART = [k for k in RESTART if not k.startswith("ui.")]  # ui.*: read by the UI


@pytest.mark.parametrize("key", ENGINE_RESTART)
async def test_restart_keys_leave_the_running_engine_alone(key: str, tmp_path: Path) -> None:
    """``config set`` says such a key waits for a restart: the running engine keeps the old."""
    value, probe = EFFECTS[key]
    engine = make_engine(tmp_path / "state")
    await engine.start()
    try:
        before = probe(engine)
        engine.config.set(key, value)
        assert probe(engine) == before
    finally:
        await engine.stop()
