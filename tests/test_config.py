"""Configuration: defaults, the TOML file, environment overrides, validation, writes."""

from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("bulk.batch_size", "0", "too small; expected an integer >= 1 and <= 1000"),
        ("bulk.batch_size", "2.5", "expected an integer"),
        ("bulk.strategy", "fastest", "one of sequential, parallel, adaptive"),
        ("analytics.anonymize_users", "maybe", "true or false"),
        ("performance.cpu_threshold", "101", "too large"),
    ],
)
def test_invalid_values_name_the_key_and_the_rule(
    tmp_path: Path, key: str, value: str, words: str
) -> None:
    cfg = Config.load(tmp_path / "config.toml", environ={})
    with pytest.raises(ConfigError) as err:
        cfg.set(key, value)
    assert key in str(err.value) and words in str(err.value)
    assert err.value.kind is FailureKind.BAD_CONFIG
    assert not (tmp_path / "config.toml").exists()  # nothing written


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
