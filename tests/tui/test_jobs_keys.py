"""Pilot tests against an embedded engine on the simulator: every Jobs key does what it says."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from civitai_tui.simulator.server import Simulator
from civitai_tui.tui.screens.add_job import AddJobScreen, parse_form
from civitai_tui.tui.screens.jobs import JobsScreen
from civitai_tui.tui.screens.modals import ConfirmScreen
from tests.tui.conftest import SIZE, Live, until


def loras(sim: Simulator, n: int) -> list[int]:
    return [m.id for m in sim.catalogue.models if m.type == "LORA" and not m.mode][:n]


async def test_rows_follow_the_engine_and_space_pauses_a_running_job(
    live: Live, sim: Simulator, tmp_path: Path
) -> None:
    large = sim.catalogue.specials.large
    # A total cap too: the optimizer opens connections until a per-connection cap
    # alone would let the 128 MiB file finish before the test has acted.
    sim.faults.set(large.file_id, per_connection_rate=2_000_000, total_rate=2_000_000)
    job = await live.client.add([f"model:{large.model_id}"], options={"dest": str(tmp_path)})
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await until(pilot, lambda: app.state.jobs[job["id"]].done_bytes > 0)
        await until(pilot, lambda: screen.table.cells_of(job["id"])["state"] == "PROCESSING")
        await pilot.press("space")
        await until(pilot, lambda: screen.table.cells_of(job["id"])["state"] == "PAUSED")
        paused_at = (await live.client.job(job["id"]))["done_bytes"]
        served = sim.stats.storage_bytes_sent
        await pilot.pause(0.6)  # a paused job must not grow: measure over a window
        assert sim.stats.storage_bytes_sent - served < 2_000_000
        assert (await live.client.job(job["id"]))["done_bytes"] == paused_at
        assert "Resume" in {b.binding.description for b in screen.active_bindings.values()}
        sim.faults.reset()
        await pilot.press("space")
        await until(pilot, lambda: screen.table.cells_of(job["id"])["state"] == "COMPLETED", 30)
        assert screen.table.cells_of(job["id"])["files"] == "1/1"


async def test_priority_keys_reorder_the_queue(live: Live, sim: Simulator, tmp_path: Path) -> None:
    large = sim.catalogue.specials.large
    sim.faults.set(large.file_id, per_connection_rate=500_000, total_rate=500_000)
    await live.client.add([f"model:{large.model_id}"], options={"dest": str(tmp_path)})
    ids = [
        (await live.client.add([f"model:{m}"], options={"dest": str(tmp_path)}))["id"]
        for m in loras(sim, 3)
    ]
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await until(pilot, lambda: len(app.state.jobs) == 4 and screen.table.row_count == 4)
        screen.table.move_cursor(row=screen.table.get_row_index(ids[2]))
        await pilot.press("plus", "plus")
        engine_order = lambda: [j.id for j in live.engine.manager.jobs()]  # noqa: E731
        await until(pilot, lambda: engine_order().index(ids[2]) < engine_order().index(ids[0]))
        assert live.engine.manager.get(ids[2]).priority == 2
        await until(
            pilot, lambda: screen.table.get_row_index(ids[2]) < screen.table.get_row_index(ids[0])
        )
        assert screen.table.selected_id == ids[2]  # the cursor stays on the moved job
        await pilot.press("minus")
        await until(pilot, lambda: live.engine.manager.get(ids[2]).priority == 1)
        await until(pilot, lambda: screen.table.cells_of(ids[2])["priority"] == "1")


async def test_cancel_asks_first_and_retry_requeues(
    live: Live, sim: Simulator, tmp_path: Path
) -> None:
    large = sim.catalogue.specials.large
    sim.faults.set(large.file_id, per_connection_rate=1_000_000, total_rate=1_000_000)
    job = await live.client.add([f"model:{large.model_id}"], options={"dest": str(tmp_path)})
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await until(pilot, lambda: screen.selected == (job["id"], "PROCESSING"))
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.screen is screen
        assert live.engine.manager.get(job["id"]).state == "PROCESSING"
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))  # "y" must reach it
        await pilot.press("y")
        await until(pilot, lambda: screen.table.cells_of(job["id"])["state"] == "CANCELLED")
        assert live.engine.manager.get(job["id"]).state == "CANCELLED"
        assert list(tmp_path.glob("*.part*")) == []
        sim.faults.reset()
        await pilot.press("r")
        await until(pilot, lambda: screen.table.cells_of(job["id"])["state"] == "COMPLETED", 30)
        # A COMPLETED job can be retried too: a file deleted since is fetched again.
        landed = Path(str(live.engine.manager.get(job["id"]).files[0].path))
        landed.unlink()
        await pilot.press("r")
        await until(pilot, lambda: landed.is_file(), 30)
        await until(pilot, lambda: live.engine.manager.get(job["id"]).state == "COMPLETED", 30)


async def test_add_dialog_previews_then_queues_what_it_showed(
    live: Live, sim: Simulator, tmp_path: Path
) -> None:
    creator = sim.catalogue.models[0].creator
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        dialog = app.screen
        assert isinstance(dialog, AddJobScreen)
        dialog.query_one("#targets", Input).value = "model:99999999"
        await pilot.press("enter")
        await until(pilot, lambda: "99999999" in str(dialog.query_one("#add-error").render()))
        await pilot.press("ctrl+s")  # nothing to queue: it previews again, queues nothing
        await until(pilot, lambda: "99999999" in str(dialog.query_one("#add-error").render()))
        assert dialog.previewed is None and live.engine.manager.jobs() == []
        dialog.query_one("#targets", Input).value = f"user:{creator}"
        dialog.query_one("#limit", Input).value = "2"
        dialog.query_one("#dest", Input).value = str(tmp_path / "lib")
        await pilot.press("f5")
        await until(pilot, lambda: dialog.previewed is not None)
        preview = await live.client.preview(
            [f"user:{creator}"], {"limit": 2, "dest": str(tmp_path / "lib")}
        )
        shown = str(dialog.query_one("#add-preview").render())
        assert f"{preview['files']} file(s)" in shown
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(live.engine.manager.jobs()) == 1)
        (queued,) = live.engine.manager.jobs()
        assert queued.targets == (f"user:{creator}",) and queued.options.limit == 2
        assert isinstance(app.screen, JobsScreen)
        assert (await live.client.wait([queued.id], timeout=30))["ok"]
        await until(
            pilot,
            lambda: (
                app.screen.table.cells_of(queued.id)["files"]
                == f"{preview['files']}/{preview['files']}"
            ),
        )


async def test_add_dialog_sends_the_destination_resolved_where_the_ui_runs(
    live: Live, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Empty field: the UI's current folder (not the engine's); relative: against it."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    model = next(m for m in sim.catalogue.models if not m.mode)
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        for typed, expected in (("", here), ("sub/dir", here / "sub" / "dir")):
            await pilot.press("a")
            dialog = app.screen
            assert isinstance(dialog, AddJobScreen)
            dialog.query_one("#targets", Input).value = f"model:{model.id}"
            dialog.query_one("#dest", Input).value = typed
            await pilot.press("f5")
            await until(pilot, lambda d=dialog: d.previewed is not None)
            assert f"into {expected}" in str(dialog.query_one("#add-preview").render())
            count = len(live.engine.manager.jobs())
            await pilot.press("ctrl+s")
            await until(pilot, lambda n=count: len(live.engine.manager.jobs()) == n + 1)
            assert live.engine.manager.jobs()[-1].options.dest == str(expected)


def test_add_form_falls_back_to_bulk_dest_then_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    fields = ("model:1", "", "", "", "", "")
    assert parse_form(*fields).options.dest == str(tmp_path)
    configured = parse_form(*fields, default_dest="~/models").options.dest
    assert configured == str(tmp_path / "home" / "models")
    typed = parse_form("model:1", "", "", "", "x", "", default_dest="~/models")
    assert typed.options.dest == str(tmp_path / "x")


async def test_add_dialog_shows_errors_inline(live: Live) -> None:
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        dialog = app.screen
        assert isinstance(dialog, AddJobScreen)
        dialog.query_one("#targets", Input).value = "model:x"
        await pilot.press("enter")
        await until(pilot, lambda: "model:x" in str(dialog.query_one("#add-error").render()))
        dialog.query_one("#targets", Input).value = "model:1"
        dialog.query_one("#limit", Input).value = "many"
        await pilot.press("f5")
        assert "limit must be a whole number" in str(dialog.query_one("#add-error").render())
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen) and live.engine.manager.jobs() == []


async def test_pause_all_resume_all_and_remove_finished(
    live: Live, sim: Simulator, tmp_path: Path
) -> None:
    done = await live.client.add([f"model:{loras(sim, 1)[0]}"], options={"dest": str(tmp_path)})
    assert (await live.client.wait([done["id"]], timeout=30))["ok"]
    large = sim.catalogue.specials.large
    sim.faults.set(large.file_id, per_connection_rate=500_000, total_rate=500_000)
    waiting = await live.client.add([f"model:{large.model_id}"], options={"dest": str(tmp_path)})
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await until(pilot, lambda: screen.table.row_count == 2)
        await pilot.press("p")
        await until(pilot, lambda: screen.table.cells_of(waiting["id"])["state"] == "PAUSED")
        await pilot.press("u")
        await until(
            pilot,
            lambda: screen.table.cells_of(waiting["id"])["state"] in ("PENDING", "PROCESSING"),
        )
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))  # asks first
        await pilot.press("y")
        await until(pilot, lambda: screen.table.row_count == 1)
        assert [j.id for j in live.engine.manager.jobs()] == [waiting["id"]]


async def test_filter_details_and_modes(live: Live, sim: Simulator, tmp_path: Path) -> None:
    ids = [
        (await live.client.add([f"model:{m}"], options={"dest": str(tmp_path)}, name=f"job {n}"))[
            "id"
        ]
        for n, m in zip(("alpha", "beta"), loras(sim, 2), strict=True)
    ]
    assert (await live.client.wait(None, timeout=30))["ok"]
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await until(pilot, lambda: screen.table.row_count == 2)
        await pilot.press("slash", *"beta")
        assert screen.table.row_count == 1 and screen.table.selected_id == ids[1]
        await pilot.press("escape")
        assert screen.table.row_count == 2
        await pilot.press("d")
        await until(pilot, lambda: screen.query_one("#detail-files").row_count == 1)
        detail = str(screen.query_one("#detail-header").render())
        assert "job beta" in detail and "1/1 files" in detail  # the cursor stayed on beta
        await pilot.press("2")
        assert app.current_mode == "performance"
        await pilot.press("3")
        assert app.current_mode == "analytics"
        await until(pilot, lambda: app.screen.report is not None)
        assert app.screen.report["totals"]["completed"] == 2
        await pilot.press("1", "question_mark")
        assert type(app.screen).__name__ == "HelpScreen"


def test_job_actions_are_offered_exactly_where_the_state_machine_allows_them() -> None:
    from civitai_tui.bulk.states import JobState as S
    from civitai_tui.tui.screens.jobs import ALLOWED

    waiting_or_running = {S.PENDING, S.PROCESSING}
    assert {
        "pause": waiting_or_running,
        "resume": {S.PAUSED},
        "cancel": waiting_or_running | {S.PAUSED},
        "retry": {S.COMPLETED, S.FAILED, S.CANCELLED},
        "priority": waiting_or_running | {S.PAUSED},
    } == ALLOWED
