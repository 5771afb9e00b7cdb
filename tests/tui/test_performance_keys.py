"""Performance screen keys against the engine's real optimizer."""

from __future__ import annotations

from civitai_tui.perf import OptimizationMode
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
