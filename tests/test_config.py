"""Configuration: defaults, the TOML file, environment overrides, validation, writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from civitai_tui.config import OPTIONS, Config, ConfigError, Environment, state_dir
from civitai_tui.errors import FailureKind


def test_defaults_without_a_file(tmp_path: Path) -> None:
    cfg = Config.load(tmp_path / "config.toml", environ={})
    assert cfg.get("bulk.batch_size") == 5
    assert cfg.get("performance.mode") == "adaptive"
    assert cfg.as_dict().keys() == OPTIONS.keys()


def test_set_persists_and_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("# my settings\n[bulk]\n# how many\nbatch_size = 2\n")
    cfg = Config.load(path, environ={})
    assert cfg.get("bulk.batch_size") == 2
    seen: list[tuple[str, object]] = []
    cfg.on_change(lambda k, v: seen.append((k, v)))
    assert cfg.set("bulk.batch_size", "3") == 3
    assert cfg.set("performance.enable_adaptive_retry", "off") is False
    text = path.read_text()
    assert "# my settings" in text and "# how many" in text
    again = Config.load(path, environ={})
    assert again.get("bulk.batch_size") == 3
    assert again.get("performance.enable_adaptive_retry") is False
    assert seen == [("bulk.batch_size", 3), ("performance.enable_adaptive_retry", False)]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[bulk]\nbatch_size = 2\n")
    cfg = Config.load(path, environ={"CIVITAI_TUI_BULK__BATCH_SIZE": "9"})
    assert cfg.get("bulk.batch_size") == 9
    assert cfg.overridden_by_env("bulk.batch_size")
    with pytest.raises(ConfigError, match="CIVITAI_TUI_BULK__STRATEGY"):
        Config.load(path, environ={"CIVITAI_TUI_BULK__STRATEGY": "fastest"})


def fresh(tmp_path: Path) -> Config:
    return Config.load(tmp_path / "config.toml", environ={})


@pytest.mark.parametrize(
    ("key", "raw", "value"),
    [
        ("bulk.sidecars", "yes", True),
        ("bulk.sidecars", "OFF", False),
        ("bulk.sidecars", False, False),
        ("bulk.batch_size", 3.0, 3),
        ("bulk.batch_size", " 12 ", 12),
        ("bulk.pause_between_batches", "1.5", 1.5),
        ("bulk.strategy", " Parallel ", "parallel"),
    ],
)
def test_values_from_the_shell_or_toml_are_coerced(
    tmp_path: Path, key: str, raw: Any, value: Any
) -> None:
    cfg = fresh(tmp_path)
    assert cfg.set(key, raw) == value
    assert fresh(tmp_path).get(key) == value  # persisted with its type


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("bulk.batch_size", "0", "too small; expected an integer >= 1 and <= 1000"),
        ("bulk.batch_size", "2.5", "expected an integer"),
        ("bulk.batch_size", True, "expected an integer >= 1"),
        ("bulk.batch_size", 2.5, "expected an integer >= 1"),
        ("bulk.strategy", "fastest", "one of sequential, parallel, adaptive"),
        ("bulk.sidecars", "maybe", "expected true or false"),
        ("bulk.pause_between_batches", True, "expected a number >= 0 and <= 3600"),
        ("bulk.pause_between_batches", 4000, "too large"),
        ("analytics.anonymize_users", "maybe", "true or false"),
        ("performance.cpu_threshold", "101", "too large"),
        ("ui.theme", 5, "expected text"),
    ],
)
def test_invalid_values_name_the_key_and_the_rule_and_change_nothing(
    tmp_path: Path, key: str, value: Any, words: str
) -> None:
    cfg = fresh(tmp_path)
    before = cfg.get(key)
    with pytest.raises(ConfigError) as err:
        cfg.set(key, value)
    assert err.value.kind is FailureKind.BAD_CONFIG
    assert err.value.message.startswith(f"{key}: {value!r}") and words in err.value.message
    assert cfg.get(key) == before
    assert not (tmp_path / "config.toml").exists()  # nothing written


def test_a_live_only_change_leaves_the_file_alone(tmp_path: Path) -> None:
    cfg = fresh(tmp_path)
    seen: list[tuple[str, Any]] = []
    cfg.on_change(lambda k, v: seen.append((k, v)))
    assert cfg.set("bulk.batch_size", 9, persist=False) == 9
    assert seen == [("bulk.batch_size", 9)] and cfg.get("bulk.batch_size") == 9
    assert not (tmp_path / "config.toml").exists()


def test_a_config_file_that_is_not_text_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes(b"[bulk]\nbatch_size = \xff\xfe\n")
    with pytest.raises(ConfigError) as err:
        fresh(tmp_path)
    assert err.value.kind is FailureKind.BAD_CONFIG
    assert "config.toml: cannot be read" in err.value.message


def test_unknown_key_lists_the_section_keys(tmp_path: Path) -> None:
    cfg = Config.load(tmp_path / "config.toml", environ={})
    with pytest.raises(
        ConfigError, match=r"unknown config key 'bulk\.batchsize'.*bulk\.batch_size"
    ):
        cfg.get("bulk.batchsize")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[bulk\nbatch_size = 2\n", "not valid TOML"),
        ("bulk = 3\n", "must be a [section] table"),
        ("[bulk]\nbatch_size = 'many'\n", "bulk.batch_size"),
        ("[nope]\nx = 1\n", "unknown config key 'nope.x'"),
    ],
)
def test_malformed_files_give_a_clear_error(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        Config.load(path, environ={})
    assert words in str(err.value) and str(path) in str(err.value)


def test_keymap_table_is_left_to_the_ui(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[keymap]\n"job.pause" = "p"\n')
    assert Config.load(path, environ={}).get("bulk.batch_size") == 5


def test_state_dir_and_environment(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert state_dir() == isolated_home and isolated_home.is_dir()
    assert Environment.from_env().base_url == "https://civitai.com"
    monkeypatch.setenv("CIVITAI_BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("CIVITAI_API_KEY", " secret-key ")
    env = Environment.from_env()
    assert env.base_url == "http://127.0.0.1:9" and env.api_key == "secret-key"
    assert "secret-key" not in repr(env)
