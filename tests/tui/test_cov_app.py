"""App-wide behaviour: a missing theme falls back with a warning; ctrl+t themes are saved."""

from __future__ import annotations

from civitai_tui.config import Config
from civitai_tui.tui.app import FALLBACK_THEME
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


async def test_a_flush_tick_during_shutdown_paints_nothing_and_does_not_crash(live: Live) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.frames > 0)
    painted = app.frames
    assert not app.is_running  # what a timer tick finds once shutdown has begun
    app.state.set_connection(not app.state.connected, "changed after exit")
    assert app.state.has_changes
    app.flush()
    assert app.frames == painted
