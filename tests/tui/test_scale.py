"""1,000 jobs and a burst of 5,000 engine events: batched painting, cells equal the engine's."""

from __future__ import annotations

import random

from civitai_tui.tui.screens.jobs import JobsScreen
from civitai_tui.tui.state import JobView
from civitai_tui.tui.widgets.jobs_table import ColumnLayout, job_cells
from tests.tui.conftest import SIZE, Live, until

JOBS = 1000
TOGGLES = 2500  # one resume + one pause each: 5,000 JobStateChanged events


def engine_cells(live: Live, layout: ColumnLayout) -> dict[str, dict[str, str]]:
    """Each job's cells, by column key, computed from the engine's own summary."""
    cells = {}
    for job in live.engine.manager.jobs():
        view = JobView(id=job.id)
        view.apply_summary(job.summary())
        cells[job.id] = dict(zip(layout.keys, job_cells(view, layout), strict=True))
    return cells


async def test_thousand_jobs_and_an_event_burst_end_in_the_engines_state(live: Live) -> None:
    manager = live.engine.manager
    for i in range(JOBS):
        await manager.add_job([f"model:{900_000_000 + i}"], name=f"bulk job {i:04d}")
    await manager.pause_all()
    sub = live.engine.bus.subscribe(maxsize=100_000)
    app = live.app()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await until(pilot, lambda: screen.table.row_count == JOBS)
        frames, seen = app.frames, app.state.events_seen
        rng = random.Random(6)
        ids = [j.id for j in manager.jobs()]
        for _ in range(TOGGLES):
            job_id = rng.choice(ids)
            await manager.resume(job_id)
            await manager.pause(job_id)
        for job_id in rng.sample(ids, 100):
            await manager.set_priority(job_id, rng.randint(-5, 5))
        for job_id in rng.sample(ids, 50):
            await manager.cancel(job_id)
        published = len([e for e in sub.drain() if e.type == "job_state_changed"])
        assert published >= 2 * TOGGLES
        expected = engine_cells(live, screen.table.column_layout)
        order = [j.id for j in manager.jobs()]
        await until(pilot, lambda: app.state.events_seen - seen >= published, 20)
        await until(pilot, lambda: {k: screen.table.cells_of(k) for k in order} == expected, 20)
        painted = [screen.table.get_row_index(k) for k in order]
        assert painted == list(range(JOBS))  # the table is in the engine's queue order
        for job_id in rng.sample(order, 50):  # what is drawn is what was computed
            row = screen.table.get_row(job_id)
            assert [str(c) for c in row] == list(expected[job_id].values())
        assert app.frames - frames < published / 20  # batched: far fewer frames than events


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
