"""Settings validation: every wrong value names the key and the rule; theme files too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from civitai_tui.config import Config
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.tui.themes import load_themes


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
    ("key", "raw", "rule"),
    [
        ("bulk.sidecars", "maybe", "expected true or false"),
        ("bulk.batch_size", True, "expected an integer >= 1"),
        ("bulk.batch_size", 2.5, "expected an integer >= 1"),
        ("bulk.pause_between_batches", True, "expected a number >= 0 and <= 3600"),
        ("bulk.pause_between_batches", 4000, "too large"),
        ("ui.theme", 5, "expected text"),
    ],
)
def test_wrong_values_name_the_key_and_the_rule_and_change_nothing(
    tmp_path: Path, key: str, raw: Any, rule: str
) -> None:
    cfg = fresh(tmp_path)
    before = cfg.get(key)
    with pytest.raises(CivitaiTuiError) as err:
        cfg.set(key, raw)
    assert err.value.kind is FailureKind.BAD_CONFIG
    assert err.value.message.startswith(f"{key}: {raw!r}") and rule in err.value.message
    assert cfg.get(key) == before and not (tmp_path / "config.toml").exists()


def test_a_live_only_change_leaves_the_file_alone(tmp_path: Path) -> None:
    cfg = fresh(tmp_path)
    seen: list[tuple[str, Any]] = []
    cfg.on_change(lambda k, v: seen.append((k, v)))
    assert cfg.set("bulk.batch_size", 9, persist=False) == 9
    assert seen == [("bulk.batch_size", 9)] and cfg.get("bulk.batch_size") == 9
    assert not (tmp_path / "config.toml").exists()


def test_a_config_file_that_is_not_text_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes(b"[bulk]\nbatch_size = \xff\xfe\n")
    with pytest.raises(CivitaiTuiError) as err:
        fresh(tmp_path)
    assert err.value.kind is FailureKind.BAD_CONFIG
    assert "config.toml: cannot be read" in err.value.message


THEME = '[colors]\nprimary = "#ff8800"\n'


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (b"name = \xff", "cannot be read"),
        (b"name = [1]\n" + THEME.encode(), "'name' must be a non-empty string"),
        (b'name = "x"\n[colors]\nsecondary = "red"\n', "at least 'primary' is required"),
        (b'name = "x"\nvariables = 3\n' + THEME.encode(), "[variables] must be a table"),
        (b'name = "x"\n' + THEME.encode() + b'glow = "red"\n', "unknown colour(s) glow"),
        (b'name = "x"\n' + THEME.encode() + b'accent = "sparkly"\n', "accent = 'sparkly'"),
    ],
)
def test_bad_theme_files_are_skipped_with_the_reason(
    tmp_path: Path, text: bytes, error: str
) -> None:
    (tmp_path / "good.toml").write_text('name = "good"\ndark = false\n' + THEME)
    (tmp_path / "zbad.toml").write_bytes(text)
    loaded = load_themes([tmp_path, tmp_path / "missing"])
    assert [t.name for t in loaded.themes] == ["good"] and not loaded.themes[0].dark
    [message] = loaded.errors
    assert message.startswith("zbad.toml: ") and error in message
