"""The Jobs screen: the queue table, a filter, sorting, a detail pane and job actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive, var
from textual.widgets import DataTable, Footer, Input, Static

from civitai_tui.bulk.states import FINISHED_STATES, TRANSITIONS, JobState
from civitai_tui.security.display import markup_safe
from civitai_tui.tui.screens.add_job import AddJobScreen
from civitai_tui.tui.screens.base import EngineScreen
from civitai_tui.tui.screens.modals import ConfirmScreen
from civitai_tui.tui.state import EngineState, JobView
from civitai_tui.tui.widgets.job_detail import JobDetail
from civitai_tui.tui.widgets.jobs_table import JobsTable
from civitai_tui.tui.widgets.mode_bar import ModeBar

#: A job's life, in order: the "state" sort follows it (not the alphabet).
LIFECYCLE = tuple(JobState)
SORTS: dict[str, Callable[[JobView], Any] | None] = {
    "queue": None,
    "name": lambda j: j.name.lower(),
    "state": lambda j: LIFECYCLE.index(j.state),
    "priority": lambda j: -j.priority,
    "progress": lambda j: -(j.done_bytes / j.total_bytes if j.total_bytes else 0.0),
    "size": lambda j: -j.total_bytes,
    "speed": lambda j: -j.speed,
}


def _into(state: JobState) -> frozenset[JobState]:
    """The states the job state machine lets a job leave for ``state``."""
    return frozenset(old for old, allowed in TRANSITIONS.items() if state in allowed)


#: Which selected-job states allow each job action (others hide the key), from the
#: state machine: an action is offered exactly where the engine would accept it.
ALLOWED: dict[str, frozenset[JobState]] = {
    "pause": _into(JobState.PAUSED),
    "resume": _into(JobState.PENDING) & {JobState.PAUSED},  # PAUSED → PENDING
    "cancel": _into(JobState.CANCELLED),
    # a COMPLETED job re-checks its files and fetches what went missing
    "retry": _into(JobState.PENDING) & FINISHED_STATES,
    "priority": frozenset(state for state in JobState if not state.finished),
}


def matches(job: JobView, text: str) -> bool:
    """The filter: every word appears in the name, id, state, type or targets."""
    haystack = " ".join((job.name, job.id, job.state, job.kind, *job.targets)).lower()
    return all(word in haystack for word in text.lower().split())


EMPTY_QUEUE = (
    "No jobs yet. Press [b]a[/b] to add downloads: a civitai.com URL, model:ID, "
    "user:NAME, tag:NAME or search:words (a preview shows the files first)."
)


class JobsScreen(EngineScreen):
    """Mode 1."""

    AUTO_FOCUS = "#jobs"
    DEFAULT_CSS = """
    JobsScreen #empty { height: auto; padding: 1 2; color: $text-muted; display: none; }
    JobsScreen #filter, JobsScreen JobDetail { display: none; }
    """

    BINDINGS = [
        Binding(
            "space",
            "job('pause')",
            "Pause",
            id="jobs.pause",
            tooltip="Pause the selected job; its partial data stays.",
        ),
        # One toggle, one id: remapping ``jobs.pause`` moves both directions together.
        Binding(
            "space",
            "job('resume')",
            "Resume",
            id="jobs.pause",
            tooltip="Put the selected paused job back in the queue.",
        ),
        Binding(
            "c",
            "cancel",
            "Cancel",
            id="jobs.cancel",
            tooltip="Cancel the selected job (asks first; deletes partial data).",
        ),
        Binding(
            "r",
            "job('retry')",
            "Retry",
            id="jobs.retry",
            tooltip="Queue the selected failed or cancelled job again.",
        ),
        Binding(
            "plus,equals_sign",
            "priority(1)",
            "Prio+",
            id="jobs.priority-up",
            tooltip="Raise the selected job's priority by one.",
        ),
        Binding(
            "minus",
            "priority(-1)",
            "Prio-",
            id="jobs.priority-down",
            tooltip="Lower the selected job's priority by one.",
        ),
        Binding(
            "a",
            "add",
            "Add",
            id="jobs.add",
            tooltip="Add downloads: URLs, ids, user:, tag:, search: with a preview.",
        ),
        Binding(
            "d",
            "details",
            "Details",
            id="jobs.details",
            tooltip="Show or hide the selected job's files.",
        ),
        Binding(
            "slash",
            "filter",
            "Filter",
            id="jobs.filter",
            tooltip="Show only jobs matching some words.",
        ),
        Binding("s", "sort", "Sort", id="jobs.sort", tooltip="Cycle the sort column."),
        Binding(
            "p",
            "queue('pause-all')",
            "Pause all",
            id="jobs.pause-all",
            tooltip="Pause every waiting or running job.",
        ),
        Binding(
            "u",
            "queue('resume-all')",
            "Resume all",
            id="jobs.resume-all",
            tooltip="Resume every paused job.",
        ),
        Binding(
            "x",
            "remove_finished",
            "Clear done",
            id="jobs.remove-finished",
            tooltip="Forget finished jobs (asks first; their files stay).",
        ),
        Binding(
            "escape",
            "clear_filter",
            "Clear filter",
            id="jobs.clear-filter",
            show=False,
            tooltip="Show every job again.",
        ),
    ]

    #: (job id, state) of the selected row.
    selected: var[tuple[str, str] | None] = var(None)
    #: The selected row's state: the footer follows it (not the id, so that moving the
    #: cursor between rows of one state does not rebuild the footer).
    selected_state: reactive[JobState | None] = reactive(None, bindings=True)
    details_open: reactive[bool] = reactive(False, bindings=True)
    sort_key: var[str] = var("queue")
    _painted_theme: str = ""  # the theme of the last full paint
    filter_text: var[str] = var("")

    def compose(self) -> ComposeResult:
        yield ModeBar("jobs")
        yield Input(
            placeholder="filter: words in name, state, type, target (esc clears)", id="filter"
        )
        yield Static(EMPTY_QUEUE, id="empty")
        yield JobsTable(id="jobs")
        yield JobDetail(id="detail")
        yield Footer()

    @property
    def table(self) -> JobsTable:
        return self.query_one(JobsTable)

    # ------------------------------------------------------------------ painting

    def visible_jobs(self, state: EngineState) -> list[JobView]:
        jobs = [j for j in state.ordered_jobs() if matches(j, self.filter_text)]
        key = SORTS[self.sort_key]
        return jobs if key is None else sorted(jobs, key=key)

    def repaint_on_resume(self) -> None:
        """Back from another mode: paint only what changed meanwhile (rebuilding a
        1,000-row table is a visible pause); everything after a theme change."""
        self.sync(self.tui.state, full=self._painted_theme != self.app.theme)

    def sync(self, state: EngineState, *, full: bool = False) -> None:
        if full:
            self._painted_theme = self.app.theme
        if not state.connected:
            self.sub_title = state.connection
        elif state.store_error:
            self.sub_title = f"engine cannot save: {state.store_error}"
        else:
            self.sub_title = f"{len(state.jobs)} jobs" + (
                f" · sorted by {self.sort_key}" if self.sort_key != "queue" else ""
            )
        dirty, reordered = state.take_dirty()
        table = self.table
        table.variables = self.app.theme_variables
        self.query_one("#empty", Static).display = state.connected and not state.jobs
        if reordered or full:
            table.rebuild(self.visible_jobs(state))
        else:
            table.update_jobs(state.jobs[i] for i in dirty if i in state.jobs)
        self._follow_cursor(state, repaint_detail=full or reordered or bool(dirty))

    def _follow_cursor(self, state: EngineState, *, repaint_detail: bool) -> None:
        job_id = self.table.selected_id
        job = state.jobs.get(job_id) if job_id else None
        self.selected = (job.id, job.state) if job else None
        self.selected_state = job.state if job else None
        self.tui.bridge.watched_job = job.id if job and self.details_open else None
        if self.details_open and repaint_detail:
            reason = f"waiting: {job.waiting}" if job and job.waiting else ""
            self.query_one(JobDetail).show(job, self.app.theme_variables, reason)

    @on(DataTable.RowHighlighted, "#jobs")
    def _row_moved(self) -> None:
        self._follow_cursor(self.tui.state, repaint_detail=True)
        if self.details_open:
            self.tui.bridge.resync_now()

    @on(DataTable.RowSelected, "#jobs")
    def _row_chosen(self) -> None:
        self.action_details()

    # ------------------------------------------------------------------ keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        rule = action if action != "job" else str(parameters[0])
        if rule not in ALLOWED:
            return True
        return self.selected_state is not None and self.selected_state in ALLOWED[rule]

    def _selected_job(self) -> JobView | None:
        return self.tui.state.jobs.get(self.selected[0]) if self.selected else None

    def action_job(self, action: str) -> None:
        job = self._selected_job()
        if job is not None:
            self.tui.engine_call(f"{action} {job.name}", lambda c: c.action(job.id, action))

    def action_cancel(self) -> None:
        job = self._selected_job()
        if job is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.action_job("cancel")

        question = f"Cancel “{job.name}”?\nIts partial downloads are deleted; finished files stay."
        self.app.push_screen(ConfirmScreen(question), answered)

    def action_remove_finished(self) -> None:
        finished = [j for j in self.tui.state.jobs.values() if j.state.finished]
        if not finished:
            self.notify("no finished jobs to clear", timeout=3)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.action_queue("remove-finished")

        question = (
            f"Forget {len(finished)} finished job(s) (completed, failed, cancelled)?\n"
            "Their files stay on disk; failed jobs can no longer be retried."
        )
        self.app.push_screen(ConfirmScreen(question), answered)

    def action_priority(self, delta: int) -> None:
        job = self._selected_job()
        if job is not None:
            new = job.priority + delta
            self.tui.engine_call("priority", lambda c: c.set_priority(job.id, new))

    def action_queue(self, action: str) -> None:
        self.tui.engine_call(action, lambda c: c.queue_action(action))

    def action_add(self) -> None:
        def queued(job: dict[str, Any] | None) -> None:
            if job:
                self.notify(f"queued “{markup_safe(job['name'])}”")
                self.tui.bridge.resync_now()

        self.app.push_screen(AddJobScreen(self.tui.client, self.tui.settings.dest), queued)

    def action_details(self) -> None:
        self.details_open = not self.details_open
        self.query_one(JobDetail).display = self.details_open
        self._follow_cursor(self.tui.state, repaint_detail=True)
        if self.details_open:
            self.tui.bridge.resync_now()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value, box.display = "", False
        self.table.focus()
        self._set_filter("")

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._set_filter(event.value)

    def _set_filter(self, text: str) -> None:
        """Show the jobs matching ``text``: rows are rebuilt only when it changed
        (closing an empty filter repaints nothing; 1,000 rows cost a visible pause)."""
        if text != self.filter_text:
            self.filter_text = text
            self.sync(self.tui.state, full=True)

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.table.focus()

    def action_sort(self) -> None:
        names = list(SORTS)
        self.sort_key = names[(names.index(self.sort_key) + 1) % len(names)]
        self.table.sort_by(self.sort_key)
        self.sync(self.tui.state, full=True)
