"""Performance screen keys against the engine's real optimizer."""

from __future__ import annotations

from civitai_tui.perf import OptimizationMode
from civitai_tui.tui.screens.modals import SpeedLimitScreen
from civitai_tui.tui.screens.performance import PerformanceScreen
from tests.tui.conftest import SIZE, Live, until


async def test_mode_keys_switch_the_engines_optimizer(live: Live) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, PerformanceScreen))
        for key, mode in (("e", "efficiency"), ("m", "minimal"), ("s", "speed"), ("a", "adaptive")):
            await pilot.press(key)
            await until(
                pilot, lambda m=mode: live.engine.optimizer.config.mode is OptimizationMode(m)
            )
        assert (await live.client.performance())["mode"] == "adaptive"
        assert live.engine.config.get("performance.mode") == "adaptive"


async def test_l_sets_the_overall_speed_limit_live(live: Live) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, PerformanceScreen))
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, SpeedLimitScreen))
        await pilot.press(*"20MB", "enter")
        await until(pilot, lambda: live.engine.config.get("download.max_speed") == 20_000_000)
        assert live.engine.manager.settings.download.speed.overall.rate == 20_000_000
        assert live.engine.optimizer.rate_cap == 20_000_000
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, SpeedLimitScreen))
        await pilot.press(*"fast", "enter")  # refused by the engine, nothing changes
        await until(pilot, lambda: isinstance(app.screen, PerformanceScreen))
        await pilot.pause()
        assert live.engine.config.get("download.max_speed") == 20_000_000
