"""The UI's link to its engine: an engine that stops ends the UI with status 1."""

from __future__ import annotations

from tests.tui.conftest import SIZE, Live, until


async def test_the_ui_leaves_with_engine_stopped_when_the_engine_stops(live: Live) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        live.engine.request_stop()
        await until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 1
    assert app.state.connection == "engine stopped"


def test_a_state_save_failure_shows_until_the_engine_saves_again() -> None:
    from civitai_tui.tui.state import EngineState

    state = EngineState()
    state.apply_message({"type": "snapshot", "jobs": [], "store_error": "disk is full"})
    assert state.store_error == "disk is full"
    state.apply_message(
        {
            "type": "events",
            "events": [{"type": "state_save_failed", "message": "", "recovered": True}],
        }
    )
    assert state.store_error is None
    state.apply_message(
        {"type": "events", "events": [{"type": "state_save_failed", "message": "full again"}]}
    )
    assert state.store_error == "full again"
