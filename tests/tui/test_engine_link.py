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
    from civitai_tui.tui.bridge import apply_message
    from civitai_tui.tui.state import EngineState

    state = EngineState()
    apply_message(state, {"type": "snapshot", "jobs": [], "store_error": "disk is full"})
    assert state.store_error == "disk is full"
    apply_message(
        state,
        {
            "type": "events",
            "events": [{"type": "state_save_failed", "message": "", "recovered": True}],
        },
    )
    assert state.store_error is None
    apply_message(
        state,
        {"type": "events", "events": [{"type": "state_save_failed", "message": "full again"}]},
    )
    assert state.store_error == "full again"


async def test_an_event_that_does_not_match_its_class_stops_the_link_and_says_why() -> None:
    """A renamed field (engine and UI of different versions) is never read as a default."""
    from collections.abc import AsyncIterator
    from typing import Any

    from civitai_tui.tui.bridge import EngineBridge
    from civitai_tui.tui.state import EngineState

    class Renamed:
        async def events(self) -> AsyncIterator[dict[str, Any]]:
            yield {"type": "snapshot", "jobs": [], "store_error": None}
            event = {"type": "file_progress", "key": "j:f", "done_bytes": 5, "total": 9}
            yield {"type": "events", "events": [{**event, "speed": 1.0}]}
            raise AssertionError("the bridge read on after a malformed event")

    state = EngineState()
    await EngineBridge(Renamed(), state).follow_events()  # type: ignore[arg-type]
    assert not state.connected
    assert state.connection.startswith(
        "file_progress event does not match this version: missing done; unknown done_bytes"
    )
