"""Themes: a missing one falls back with a warning, ctrl+t cycles and saves, bad files skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from civitai_tui.config import Config
from civitai_tui.tui.app import FALLBACK_THEME
from civitai_tui.tui.themes import load_themes
from tests.tui.conftest import SIZE, Live, until


async def test_unknown_theme_falls_back_and_the_next_theme_is_saved_to_the_engine(
    live: Live,
) -> None:
    Config.load(live.home / "config.toml", environ={}).set("ui.theme", "no-such-theme")
    app = live.app()
    assert app.theme == FALLBACK_THEME
    assert f"theme 'no-such-theme' is not installed; using {FALLBACK_THEME}" in app.warnings
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: any("no-such-theme" in n.message for n in app._notifications))
        seen = [app.theme]
        for _ in app.our_themes:
            await pilot.press("ctrl+t")
            await until(pilot, lambda: app.theme != seen[-1])
            seen.append(app.theme)
        assert sorted(set(seen)) == sorted(app.our_themes)  # every theme, then round again
        assert seen[-1] == seen[0]
        await until(pilot, lambda: live.engine.config.get("ui.theme") == app.theme)


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
