"""Key bindings as a new user meets them: remapped toggles, the help, the mode tabs, the footer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.screen import Screen
from textual.widgets import OptionList

from civitai_tui.events import JobStateChanged
from civitai_tui.simulator.server import Simulator
from civitai_tui.tui.app import CivitaiTuiApp, engine_keeps_running, make_app
from civitai_tui.tui.commands import ScreenCommands, eval_params
from civitai_tui.tui.screens.jobs import JobsScreen
from civitai_tui.tui.screens.modals import ConfirmScreen
from civitai_tui.tui.widgets.mode_bar import MODE_TABS, BarItem, ModeBar
from tests.tui.conftest import SIZE, Live, until
from tests.tui.scripted import JOBS, T0, WAITING, ScriptedEngine


def app_with(home: Path, config: str = "") -> tuple[CivitaiTuiApp, ScriptedEngine]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(config)
    engine = ScriptedEngine()
    return make_app(engine, home, clock=lambda: T0), engine  # type: ignore[arg-type]


def job_id(state: str) -> str:
    return next(j["id"] for j in JOBS if j["state"] == state)


async def test_a_remapped_pause_key_pauses_and_resumes_and_help_lists_it(
    isolated_home: Path,
) -> None:
    app, engine = app_with(isolated_home, '[keymap]\n"jobs.pause" = "f5"\n')
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await until(pilot, lambda: screen.table.row_count == len(JOBS))
        running, paused = job_id("PROCESSING"), job_id("PAUSED")
        screen.table.move_cursor(row=screen.table.get_row_index(running))
        await until(pilot, lambda: screen.selected == (running, "PROCESSING"))
        await pilot.press("f5")
        await until(pilot, lambda: ("pause", running) in engine.calls)
        screen.table.move_cursor(row=screen.table.get_row_index(paused))
        await until(pilot, lambda: screen.selected == (paused, "PAUSED"))
        await pilot.press("space")  # the old key is gone for both directions
        await pilot.press("f5")
        await until(pilot, lambda: ("resume", paused) in engine.calls)
        assert engine.calls == [("pause", running), ("resume", paused)]
        rows = {row[2]: row for row in app.help_rows()}
        assert rows["jobs.pause"][:2] == ("f5", "Pause / Resume")
        assert rows["app.quit"][1] == "Quit" and "jobs.add" in rows


async def test_the_default_space_toggles_both_ways(isolated_home: Path) -> None:
    app, engine = app_with(isolated_home)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await until(pilot, lambda: screen.table.row_count == len(JOBS))
        for state, action in (("PAUSED", "resume"), ("PROCESSING", "pause")):
            target = job_id(state)
            screen.table.move_cursor(row=screen.table.get_row_index(target))
            await until(pilot, lambda t=target, s=state: screen.selected == (t, s))
            await pilot.press("space")
            await until(pilot, lambda t=target, a=action: (a, t) in engine.calls)
        ids = [row[2] for row in app.help_rows()]
        assert ids.index("jobs.pause") < ids.index("app.quit")  # the screen's keys first
        assert ("space", "Pause / Resume", "jobs.pause") in app.help_rows()


@pytest.mark.parametrize("width", [80, 120])
async def test_mode_tabs_help_and_quit_always_show_and_click(
    isolated_home: Path, width: int
) -> None:
    app, _ = app_with(isolated_home)
    async with app.run_test(size=(width, 24)) as pilot:
        await until(pilot, lambda: app.screen.query_one("#jobs").row_count > 0)
        keys = {"jobs": "1", "performance": "2", "analytics": "3", "browse": "4"}
        for mode, key in keys.items():
            await pilot.press(key)
            await until(pilot, lambda m=mode: app.current_mode == m)
            bar = app.screen.query_one(ModeBar)
            labels = {item.id: (str(item.render()), item.region) for item in bar.query(BarItem)}
            assert [labels[f"tab-{m}"][0] for m, _, _ in MODE_TABS] == [
                "1 Jobs",
                "2 Performance",
                "3 Analytics",
                "4 Browse",
            ]
            assert labels["key-help"][0] == "? Help" and labels["key-quit"][0] == "^q Quit"
            for _text, region in labels.values():  # every label whole on the screen
                assert region.width > 0 and region.right <= width
            assert bar.query_one(f"#tab-{mode}").has_class("-current")
        await pilot.click("#tab-jobs")
        await until(pilot, lambda: app.current_mode == "jobs")
        await pilot.click("#key-help")
        await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")


async def test_a_remapped_mode_key_shows_in_the_tab(isolated_home: Path) -> None:
    app, _ = app_with(isolated_home, '[keymap]\n"nav.analytics" = "f3"\n')
    async with app.run_test(size=SIZE) as pilot:
        tab = app.screen.query_one("#tab-analytics", BarItem)
        assert str(tab.render()) == "f3 Analytics"
        await pilot.press("f3")
        await until(pilot, lambda: app.current_mode == "analytics")


async def test_x_asks_before_forgetting_finished_jobs(isolated_home: Path) -> None:
    app, engine = app_with(isolated_home)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await until(pilot, lambda: screen.table.row_count == len(JOBS))
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = str(app.screen.query_one("#question").render())
        assert "Forget 2 finished job(s)" in question and "files stay on disk" in question
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen)
        assert engine.calls == []
        await pilot.press("x", "y")
        await until(pilot, lambda: engine.calls == [("remove-finished",)])


async def test_sort_shows_in_the_header_and_state_follows_the_lifecycle(
    isolated_home: Path,
) -> None:
    app, _ = app_with(isolated_home)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        table = screen.table
        await until(pilot, lambda: table.row_count == len(JOBS))
        labels = lambda: [str(c.label) for c in table.ordered_columns]  # noqa: E731
        assert not any(label.endswith("▾") for label in labels())  # queue order: no mark
        await pilot.press("s", "s")
        await until(pilot, lambda: "State▾" in labels())
        assert "sorted by state" in screen.sub_title
        states = [table.cells_of(str(row.key.value))["state"] for row in table.ordered_rows]
        assert states == ["PENDING", "PROCESSING", "PROCESSING", "PAUSED", "COMPLETED", "FAILED"]
        await pilot.press("s")
        await until(pilot, lambda: "Pri▾" in labels() and "State" in labels())


async def test_a_pending_job_says_why_it_waits(isolated_home: Path) -> None:
    app, _ = app_with(isolated_home)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await until(pilot, lambda: screen.table.row_count == len(JOBS))
        pending = job_id("PENDING")
        screen.table.move_cursor(row=screen.table.get_row_index(pending))
        await pilot.press("d")
        header = lambda: str(screen.query_one("#detail-header").render())  # noqa: E731
        await until(pilot, lambda: "waiting:" in header())
        assert f"waiting: {WAITING}" in header()  # the engine's words


async def test_theme_switch_says_which_and_quitting_says_the_engine_goes_on(
    isolated_home: Path,
) -> None:
    app, _ = app_with(isolated_home)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.state.jobs) == len(JOBS))
        await pilot.press("ctrl+t")
        await until(pilot, lambda: any("theme: " in n.message for n in app._notifications))
        [note] = [n.message for n in app._notifications if "theme: " in n.message]
        assert note.startswith(f"theme: {app.theme} ")
    message = engine_keeps_running(app.state)
    assert "keeps downloading in the background (3 job(s) running or waiting)" in message
    assert "`civitai-tui engine stop` stops it" in message


async def test_a_finished_job_is_announced_with_the_bell_when_asked(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = app_with(isolated_home, "[ui]\nnotify_done = 'bell'\n")
    rings: list[int] = []
    monkeypatch.setattr(app, "bell", lambda: rings.append(1))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.state.jobs) == len(JOBS))
        running = job_id("PROCESSING")
        app.state.apply_event(JobStateChanged(job_id=running, old="PROCESSING", new="FAILED"))
        await until(pilot, lambda: any(": failed" in n.message for n in app._notifications))
        assert rings == [1]
        assert any(n.message == "SDXL Base Checkpoint: failed" for n in app._notifications)
        # a repeat of a finished state is not a new ending
        app.state.apply_event(JobStateChanged(job_id=running, old="FAILED", new="CANCELLED"))
        await pilot.pause(0.3)
        assert rings == [1]


class EmptyEngine(ScriptedEngine):
    """An engine with an empty queue."""

    async def jobs(self) -> list[dict[str, Any]]:
        return []

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "snapshot", "jobs": []}
        await asyncio.Event().wait()


async def test_the_empty_queue_says_press_a_to_add(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    app = make_app(EmptyEngine(), isolated_home, clock=lambda: T0)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        empty = app.screen.query_one("#empty")
        await until(pilot, lambda: empty.display and empty.region.height > 0)  # laid out
        assert "Press a to add downloads" in str(empty.render())
        assert empty.region.y < 4  # at the top, in view


async def settled_jobs_counting_rebuilds(app: Any, pilot: Any) -> tuple[JobsScreen, list[int]]:
    """The Jobs screen once every job is painted and the state is settled, with a list
    that gains an entry at every full table rebuild from then on."""
    screen = app.screen
    assert isinstance(screen, JobsScreen)
    await until(pilot, lambda: screen.table.row_count == len(JOBS))
    await until(pilot, lambda: app.state.connected and not app.state.has_changes)
    rebuilds: list[int] = []
    real = screen.table.rebuild
    screen.table.rebuild = lambda jobs: (rebuilds.append(1), real(jobs))[1]  # type: ignore[method-assign]
    return screen, rebuilds


async def test_switching_back_to_jobs_repaints_only_what_changed(isolated_home: Path) -> None:
    app, _ = app_with(isolated_home)
    async with app.run_test(size=SIZE) as pilot:
        _, rebuilds = await settled_jobs_counting_rebuilds(app, pilot)
        await pilot.press("2")
        await until(pilot, lambda: app.current_mode == "performance")
        await pilot.press("1")
        await until(pilot, lambda: app.current_mode == "jobs")
        assert rebuilds == []  # nothing moved: no 1,000-row rebuild on the way back
        await pilot.press("2", "ctrl+t", "1")  # a theme change while away repaints it all
        await until(pilot, lambda: app.current_mode == "jobs" and rebuilds == [1])


async def test_switching_to_performance_paints_it_once(isolated_home: Path) -> None:
    app, _ = app_with(isolated_home)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.state.jobs) == len(JOBS))
        await pilot.press("2")
        await until(pilot, lambda: app.current_mode == "performance")
        screen = app.screen
        syncs: list[bool] = []
        real = screen.sync
        screen.sync = lambda state, full=False: (syncs.append(full), real(state, full=full))[1]  # type: ignore[method-assign]
        await pilot.press("1", "2")
        await until(pilot, lambda: app.current_mode == "performance" and syncs.count(True) >= 1)
        await pilot.pause(0.2)
        assert syncs.count(True) == 1  # one full paint per switch, not two


async def test_opening_and_closing_an_empty_filter_rebuilds_nothing(isolated_home: Path) -> None:
    app, _ = app_with(isolated_home)
    async with app.run_test(size=SIZE) as pilot:
        screen, rebuilds = await settled_jobs_counting_rebuilds(app, pilot)
        await pilot.press("slash", "escape")
        await until(pilot, lambda: not screen.query_one("#filter").display)
        assert rebuilds == []
        await pilot.press("slash", "x", "escape")  # a real filter: once in, once out
        await until(pilot, lambda: not screen.query_one("#filter").display and len(rebuilds) == 2)


def first_option(palette: Screen[object]) -> str:
    """The palette's top hit (it searches in a worker: poll this)."""
    options = palette.query_one(OptionList)
    if options.option_count == 0:
        raise LookupError("no hits yet")
    return str(options.get_option_at_index(0).prompt)


def test_action_parameters_are_read_as_literals() -> None:
    assert eval_params("") == []
    assert eval_params("'pause')") == ["pause"]
    assert eval_params("-1)") == [-1]


async def test_palette_lists_allowed_commands_and_runs_them(
    live: Live, sim: Simulator, tmp_path: Path
) -> None:
    large = sim.catalogue.specials.large
    # A total cap too: the optimizer opens connections until a per-connection cap
    # alone would let the 128 MiB file finish before the test has acted.
    sim.faults.set(large.file_id, per_connection_rate=300_000, total_rate=300_000)
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        provider = ScreenCommands(screen)
        idle = {hit.text async for hit in provider.discover()}
        assert {"jobs: Add", "jobs: Pause all", "jobs: Resume all"} <= idle
        assert "jobs: Pause" not in idle  # nothing selected: no job actions

        job = await live.client.add([f"model:{large.model_id}"], options={"dest": str(tmp_path)})
        await until(pilot, lambda: screen.table.cells_of(job["id"])["state"] == "PROCESSING")
        await until(pilot, lambda: screen.selected is not None)
        hits = {hit.text: hit async for hit in provider.search("pause")}
        assert "jobs: Pause" in hits and "jobs: Resume" not in hits
        await hits["jobs: Pause"].command()
        await until(pilot, lambda: screen.table.cells_of(job["id"])["state"] == "PAUSED")

        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"resume all")
        await until(pilot, lambda: "Resume all" in first_option(app.screen))
        await pilot.press("enter")
        await until(pilot, lambda: screen.table.cells_of(job["id"])["state"] != "PAUSED")
        assert (await live.client.action(job["id"], "cancel"))["state"] == "CANCELLED"
