"""Mode 4, Browse: search CivitAI, look at a model, queue a version; the library's updates.

Every answer comes from the engine (``browse_search``, ``browse_model``,
``browse_image``, ``library``, ``queue_updates``), which caches it on disk: this
screen never blocks on it. Pages are fetched by workers and appended while the
list stays usable; a page that arrives for an older search is dropped (each
search has a generation number). The filters cycle with one key each, forward
and (shifted) backward, and a changed filter searches again at once.

Queueing reuses the add dialog: ``a`` opens it with the version as its target
and its preview (destination, size, free space, already present) already
asked for; ``ctrl+s`` there queues it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.events import Resize
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState

from civitai_tui.browse.records import BrowseQuery, LibraryEntry, ModelDetail, ModelSummary
from civitai_tui.civitai.vocabulary import BASE_MODELS, MODEL_TYPES, PERIODS, SORTS
from civitai_tui.errors import CivitaiTuiError
from civitai_tui.security.display import markup_safe, printable
from civitai_tui.tui.images import renderer
from civitai_tui.tui.screens.add_job import AddJobScreen
from civitai_tui.tui.screens.base import EngineScreen
from civitai_tui.tui.screens.modals import ConfirmScreen
from civitai_tui.tui.screens.pick_files import PickFilesScreen
from civitai_tui.tui.state import EngineState
from civitai_tui.tui.widgets.browse_results import BrowseResults
from civitai_tui.tui.widgets.library_table import LibraryTable
from civitai_tui.tui.widgets.mode_bar import ModeBar
from civitai_tui.tui.widgets.model_detail import (
    ModelDetailPane,
    age_text,
    detail_text,
    pick_preview,
)

#: Another page is asked for when fewer rows than this (or than a screenful) lie below the cursor.
PREFETCH_ROWS = 10
#: Below this width the detail pane takes the list's place instead of sitting beside it.
SIDE_BY_SIDE_WIDTH = 110
#: The detail beside the list follows the cursor once it rests this long (no request per row).
FOLLOW_DELAY = 0.3
#: Each filter key cycles through these ("" = any).
FILTERS: dict[str, tuple[str, ...]] = {
    "type": ("", *MODEL_TYPES),
    "base": ("", *BASE_MODELS),
    "sort": SORTS,
    "period": PERIODS,
}
#: A version's file, queued on its own, as a download link (the target parser takes it).
FILE_TARGET = "https://civitai.com/api/download/models/{version}?fileId={file}"
MODEL_PAGE = "https://civitai.com/models/{model}"
RESULTS_ACTIONS = frozenset(
    {"cycle", "toggle_nsfw", "queue", "pick_files", "copy_url", "open_detail", "search"}
)
LIBRARY_ACTIONS = frozenset({"update_one", "update_all"})


def _filter_binding(key: str, name: str, step: int, what: str) -> Binding:
    direction = "next" if step > 0 else "previous"
    return Binding(
        key,
        f"cycle('{name}', {step})",
        what if step > 0 else f"{what} back",
        id=f"browse.{name}" if step > 0 else f"browse.{name}-back",
        show=False,  # the filter line names the keys
        tooltip=f"Search again with the {direction} {what.lower()}.",
    )


def query_filters(query: BrowseQuery) -> dict[str, str]:
    """The current value of each cycling filter ("" = any)."""
    return {
        "type": query.types[0] if query.types else "",
        "base": query.base_models[0] if query.base_models else "",
        "sort": query.sort,
        "period": query.period,
    }


def with_filter(query: BrowseQuery, name: str, value: str) -> BrowseQuery:
    """``query`` with one filter changed, from its first page."""
    changes: dict[str, Any] = {
        "type": {"types": (value,) if value else ()},
        "base": {"base_models": (value,) if value else ()},
        "sort": {"sort": value},
        "period": {"period": value},
    }[name]
    return replace(query, cursor=None, **changes)


def filters_line(query: BrowseQuery, keys: dict[str, str]) -> str:
    """``t type any · b base SDXL 1.0 · s Highest Rated · p AllTime · n NSFW off`` (plain)."""
    values = query_filters(query)
    words = f" · “{printable(query.query)}”" if query.query else ""
    return (
        f"{keys['type']} type {printable(values['type'] or 'any')}"
        f" · {keys['base']} base {printable(values['base'] or 'any')}"
        f" · {keys['sort']} {values['sort']} · {keys['period']} {values['period']}"
        f" · {keys['nsfw']} NSFW {'on' if query.nsfw else 'off'}{words}"
    )


class BrowseScreen(EngineScreen):
    """Mode 4."""

    AUTO_FOCUS = "#results"
    DEFAULT_CSS = f"""
    BrowseScreen #browse-search {{ height: 1; border: none; padding: 0 1; background: $panel; }}
    BrowseScreen #browse-search:focus {{ background: $boost; }}
    BrowseScreen #browse-filters {{
        height: 1; padding: 0 1; background: $surface; color: $text-muted;
        text-wrap: nowrap; text-overflow: ellipsis;
    }}
    BrowseScreen #browse-main {{ height: 1fr; }}
    BrowseScreen #model-detail {{ display: none; }}
    BrowseScreen.-detail #model-detail {{ display: block; width: 55%; }}
    BrowseScreen.-detail.-narrow #model-detail {{ width: 1fr; }}
    BrowseScreen.-detail.-narrow #results {{ display: none; }}
    BrowseScreen #library {{ display: none; }}
    BrowseScreen.-library #library {{ display: block; }}
    BrowseScreen.-library #browse-main {{ display: none; }}
    BrowseScreen.-library #browse-search {{ display: none; }}
    /* the narrow/wide switch is at {SIDE_BY_SIDE_WIDTH} columns */
    """

    BINDINGS = [
        Binding(
            "slash",
            "search",
            "Search",
            id="browse.search",
            show=False,  # the search box says it
            tooltip="Type words to search.",
        ),
        Binding(
            "enter",
            "open_detail",
            "Details",
            id="browse.details",
            tooltip="Versions, files, scans, licence and description of the model.",
        ),
        _filter_binding("t", "type", 1, "Type"),
        _filter_binding("T", "type", -1, "Type"),
        _filter_binding("b", "base", 1, "Base"),
        _filter_binding("B", "base", -1, "Base"),
        _filter_binding("s", "sort", 1, "Sort"),
        _filter_binding("S", "sort", -1, "Sort"),
        _filter_binding("p", "period", 1, "Period"),
        _filter_binding("P", "period", -1, "Period"),
        Binding(
            "n",
            "toggle_nsfw",
            "NSFW",
            id="browse.nsfw",
            show=False,
            tooltip="Include NSFW models (previews stay within browse.nsfw_level).",
        ),
        Binding(
            "L",
            "library",
            "Library",
            id="browse.library",
            tooltip="Your model files, identified by hash, with a badge when an update exists.",
        ),
        Binding(
            "v", "version(1)", "Version", id="browse.version", tooltip="Choose the next version."
        ),
        Binding(
            "V",
            "version(-1)",
            "Version back",
            id="browse.version-back",
            show=False,
            tooltip="Choose the previous version.",
        ),
        Binding(
            "a",
            "queue",
            "Queue",
            id="browse.queue",
            tooltip="Queue the chosen version's primary file (with the add preview).",
        ),
        Binding(
            "A",
            "pick_files",
            "Files",
            id="browse.pick-files",
            tooltip="Choose which files of the chosen version to queue.",
        ),
        Binding(
            "o",
            "copy_url",
            "URL",
            id="browse.copy-url",
            tooltip="Copy the model's page URL to the clipboard (OSC 52).",
        ),
        Binding(
            "r", "refresh", "Refresh", id="browse.refresh", tooltip="Ask CivitAI again (no cache)."
        ),
        Binding(
            "u",
            "update_one",
            "Update",
            id="browse.update",
            tooltip="Queue the newest version of the selected file's model beside it.",
        ),
        Binding(
            "U",
            "update_all",
            "Update all",
            id="browse.update-all",
            tooltip="Queue every update the library view shows (asks first).",
        ),
        Binding(
            "escape",
            "back",
            "Back",
            id="browse.back",
            show=False,
            tooltip="Leave the search box, close the details, or leave the library.",
        ),
    ]

    view: reactive[str] = reactive("results", bindings=True)
    detail_open: reactive[bool] = reactive(False, bindings=True)

    def __init__(self) -> None:
        super().__init__()
        self.browse_query = BrowseQuery()
        self.next_cursor: str | None = None
        self.loading_more = False
        self.generation = 0  # one per search: a page of an older search is dropped
        self.page_age = 0.0
        self.detail: ModelDetail | None = None
        self.version_index = 0
        self.library_loaded = False
        self.library_text = ""
        self._follow_timer: Timer | None = None
        #: ``time.perf_counter()`` after each page was painted (the benchmark reads it).
        self.painted: list[float] = []

    def compose(self) -> ComposeResult:
        yield ModeBar("browse")
        yield Input(placeholder="/ search CivitAI (enter: search · esc: back)", id="browse-search")
        yield Static("", id="browse-filters", markup=False)
        with Horizontal(id="browse-main"):
            yield BrowseResults(id="results")
            yield ModelDetailPane(renderer(self.app.is_headless), id="model-detail")
        yield LibraryTable(id="library")
        yield Footer()

    def on_mount(self) -> None:
        self._paint_status("searching…")
        self.search()

    def repaint_on_resume(self) -> None:
        """Browse paints from its own answers, not from the job state."""

    def sync(self, state: EngineState, *, full: bool = False) -> None:
        """Nothing of the job state shows here; ``full`` (a new theme) recolours the text."""
        if full:
            self._paint_detail()
            self.library.show(list(self.library.entries.values()), self.app.theme_variables)

    @property
    def results(self) -> BrowseResults:
        return self.query_one(BrowseResults)

    @property
    def pane(self) -> ModelDetailPane:
        return self.query_one(ModelDetailPane)

    @property
    def library(self) -> LibraryTable:
        return self.query_one(LibraryTable)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A bug in a Browse worker is shown and logged, never swallowed."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.log.error("browse worker failed", event.worker.name, error)
            self.notify(
                f"Browse: unexpected {type(error).__name__}: {markup_safe(error)}",
                severity="error",
                timeout=10,
            )

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width < SIDE_BY_SIDE_WIDTH, "-narrow")

    # ------------------------------------------------------------------ status

    def _paint_status(self, doing: str = "") -> None:
        if self.view == "library":
            return  # the line says the library's state until the list is back
        shown = self.results.row_count
        if doing:
            state = doing
        elif self.next_cursor:
            state = f"{shown} models, more below"
        else:
            state = f"{shown} models" if shown else "no models match"
        keys = {name: self.key_label(f"browse.{name}") for name in (*FILTERS, "nsfw")}
        self.query_one("#browse-filters", Static).update(
            f"{filters_line(self.browse_query, keys)} │ {state}"
        )
        self.sub_title = doing or f"{state} ({age_text(self.page_age)})"

    def key_label(self, binding_id: str) -> str:
        """The first key of this screen's binding ``binding_id``, after the ``[keymap]``."""
        binding = next(b for b in self.BINDINGS if isinstance(b, Binding) and b.id == binding_id)
        key = self.tui.settings.keymap.get(binding_id, binding.key).split(",")[0].strip()
        return self.app.get_key_display(binding.with_key(key, key_display=None))

    # ------------------------------------------------------------------ results

    def search(self, *, refresh: bool = False) -> None:
        """Start the current query from its first page (the list stays until it answers)."""
        self.generation += 1
        self.loading_more = False
        self.next_cursor = None
        self._paint_status("searching…")
        self._load_page(replace(self.browse_query, cursor=None), self.generation, refresh)

    @work(exclusive=True, group="browse-page", exit_on_error=False)
    async def _load_page(self, query: BrowseQuery, generation: int, refresh: bool) -> None:
        try:
            page = await self.tui.client.browse_search(query, refresh=refresh)
        except CivitaiTuiError as err:
            if generation == self.generation:
                self.loading_more = False
                self._paint_status(f"search failed: {printable(err.message)}")
                self.notify(f"search: {markup_safe(err.message)}", severity="error", timeout=8)
            return
        if generation != self.generation:
            return
        table = self.results
        if query.cursor is None:
            table.replace_all(page.items)
        else:
            table.append(page.items)
        self.next_cursor = page.next_cursor
        self.page_age = page.age_s
        self.loading_more = False
        self._paint_status()
        self.call_after_refresh(lambda: self.painted.append(time.perf_counter()))
        self._maybe_load_more()

    def _maybe_load_more(self) -> None:
        """Ask for the next page when the cursor nears the end of what is shown."""
        table = self.results
        near = max(PREFETCH_ROWS, table.size.height)
        if self.next_cursor is None or self.loading_more or table.rows_below_cursor() >= near:
            return
        self.loading_more = True
        self._paint_status(f"{table.row_count} models, loading more…")
        query = replace(self.browse_query, cursor=self.next_cursor)
        self._load_page(query, self.generation, False)

    @on(DataTable.RowHighlighted, "#results")
    def _row_moved(self) -> None:
        self._maybe_load_more()
        if self.detail_open and not self.has_class("-narrow"):
            if self._follow_timer is not None:
                self._follow_timer.stop()
            self._follow_timer = self.set_timer(FOLLOW_DELAY, self._follow)

    def _follow(self) -> None:
        model = self.results.selected
        if self.detail_open and model and (not self.detail or self.detail.summary.id != model.id):
            self._load_detail(model.id, False)

    @on(DataTable.RowSelected, "#results")
    def _row_chosen(self) -> None:
        self.action_open_detail()

    @on(Input.Submitted, "#browse-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        self.browse_query = replace(self.browse_query, query=event.value.strip(), cursor=None)
        self.results.focus()
        self.search()

    # ------------------------------------------------------------------ detail

    @work(exclusive=True, group="browse-detail", exit_on_error=False)
    async def _load_detail(self, model_id: int, refresh: bool) -> ModelDetail | None:
        if self.detail is None or self.detail.summary.id != model_id:
            self.pane.show_text("asking the engine…")
            self.pane.preview.clear("")
        try:
            detail = await self.tui.client.browse_model(model_id, refresh=refresh)
        except CivitaiTuiError as err:
            self.pane.show_text(Text(f"cannot show model {model_id}: {printable(err.message)}"))
            return None
        if self.detail is None or self.detail.summary.id != detail.summary.id:
            self.version_index = 0
        self.detail = detail
        self._paint_detail()
        return detail

    def _paint_detail(self) -> None:
        detail = self.detail
        if detail is None:
            return
        self.version_index = min(self.version_index, max(len(detail.versions) - 1, 0))
        self.pane.show_text(detail_text(detail, self.version_index, self.app.theme_variables))
        cap = self.tui.settings.nsfw_level
        image = pick_preview(detail, self.version_index, cap)
        why = f"no preview within NSFW level {cap} (browse.nsfw_level)"
        self.pane.preview.show(self.tui.client, image, why)

    def _detail_of(self, model: ModelSummary) -> ModelDetail | None:
        return self.detail if self.detail and self.detail.summary.id == model.id else None

    # ------------------------------------------------------------------ keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in RESULTS_ACTIONS:
            return self.view == "results"
        if action == "version":
            return self.view == "results" and self.detail_open
        if action in LIBRARY_ACTIONS:
            return self.view == "library"
        return True

    def action_search(self) -> None:
        box = self.query_one("#browse-search", Input)
        box.value = self.browse_query.query
        box.focus()

    def action_cycle(self, name: str, step: int) -> None:
        choices = FILTERS[name]
        current = query_filters(self.browse_query)[name]
        index = choices.index(current) if current in choices else 0
        value = choices[(index + step) % len(choices)]
        self.browse_query = with_filter(self.browse_query, name, value)
        self.search()

    def action_toggle_nsfw(self) -> None:
        self.browse_query = replace(self.browse_query, nsfw=not self.browse_query.nsfw, cursor=None)
        self.search()

    def action_open_detail(self) -> None:
        model = self.results.selected
        if model is None:
            return
        self.detail_open = True
        self.add_class("-detail")
        self._load_detail(model.id, False)
        if self.has_class("-narrow"):
            self.pane.focus()

    def action_version(self, step: int) -> None:
        if self.detail and self.detail.versions:
            self.version_index = (self.version_index + step) % len(self.detail.versions)
            self._paint_detail()

    def action_back(self) -> None:
        if self.focused is self.query_one("#browse-search", Input):
            self.results.focus()
        elif self.view == "library":
            self.action_library()
        elif self.detail_open:
            self.detail_open = False
            self.remove_class("-detail")
            self.results.focus()

    def action_refresh(self) -> None:
        if self.view == "library":
            self._load_library(True)
            return
        self.search(refresh=True)
        model = self.results.selected
        if self.detail_open and model is not None:
            self._load_detail(model.id, True)

    def action_copy_url(self) -> None:
        model = self.results.selected
        if model is None:
            return
        detail = self._detail_of(model)
        url = detail.page_url if detail else MODEL_PAGE.format(model=model.id)
        self.app.copy_to_clipboard(url)
        self.notify(f"copied {markup_safe(url)} (OSC 52: the terminal must allow it)", timeout=4)

    def action_queue(self) -> None:
        """The chosen version (the newest when no detail is open) through the add dialog."""
        model = self.results.selected
        if model is None:
            return
        detail = self._detail_of(model)
        if detail and detail.versions:
            target = f"version:{detail.versions[self.version_index].id}"
        else:
            target = f"model:{model.id}"  # the newest version's primary file
        self._add_dialog([target])

    def action_pick_files(self) -> None:
        model = self.results.selected
        if model is not None:
            self._pick_files(model)

    @work(exclusive=True, group="browse-pick", exit_on_error=False)
    async def _pick_files(self, model: ModelSummary) -> None:
        detail = self._detail_of(model)
        if detail is None:
            try:
                detail = await self.tui.client.browse_model(model.id)
            except CivitaiTuiError as err:
                self.notify(f"files: {markup_safe(err.message)}", severity="error", timeout=8)
                return
        if not detail.versions:
            self.notify("this model has no version to download", severity="warning")
            return
        version = detail.versions[self.version_index if detail is self.detail else 0]

        def chosen(file_ids: list[int] | None) -> None:
            if file_ids:
                self._add_dialog([FILE_TARGET.format(version=version.id, file=f) for f in file_ids])

        self.app.push_screen(PickFilesScreen(version), chosen)

    def _add_dialog(self, targets: list[str]) -> None:
        def queued(job: dict[str, Any] | None) -> None:
            if job:
                self.notify(f"queued “{markup_safe(job['name'])}” (1: Jobs shows it)")
                self.tui.bridge.resync_now()

        dialog = AddJobScreen(self.tui.client, self.tui.settings.dest, targets=targets)
        self.app.push_screen(dialog, queued)

    # ------------------------------------------------------------------ library

    def action_library(self) -> None:
        self.view = "library" if self.view == "results" else "results"
        self.set_class(self.view == "library", "-library")
        if self.view == "library":
            self.library.focus()
            if self.library_loaded:
                self._library_status(self.library_text)
            else:
                self._load_library(False)
        else:
            self.results.focus()
            self._paint_status()

    def _library_status(self, text: str) -> None:
        """The library view's state, in the mode bar and on the line the filters use."""
        self.library_text = text
        self.sub_title = f"library: {text}"
        self.query_one("#browse-filters", Static).update(f"library: {text}")

    @work(exclusive=True, group="browse-library", exit_on_error=False)
    async def _load_library(self, refresh: bool) -> None:
        self._library_status("checking your model files (hashes, then CivitAI)…")
        try:
            entries = await self.tui.client.library(None, refresh=refresh)
        except CivitaiTuiError as err:
            self._library_status(printable(err.message))
            self.notify(f"library: {markup_safe(err.message)}", severity="error", timeout=8)
            return
        self.library_loaded = True
        self.library.show(entries, self.app.theme_variables)
        updates = sum(1 for e in entries if e.has_update)
        self._library_status(f"{len(entries)} model file(s), {updates} with an update")

    def action_update_one(self) -> None:
        entry = self.library.selected
        if entry is None or not entry.has_update:
            self.notify("the selected file has no newer version", timeout=3)
            return
        self._queue_updates([entry])

    def action_update_all(self) -> None:
        updates = self.library.updates()
        if not updates:
            self.notify("no updates to queue", timeout=3)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._queue_updates(updates)

        question = (
            f"Queue the newest version of {len(updates)} model(s)?\n"
            "Each goes beside the file it updates; nothing is deleted."
        )
        self.app.push_screen(ConfirmScreen(question), answered)

    def _queue_updates(self, entries: list[LibraryEntry]) -> None:
        ids = sorted({e.newest_version_id for e in entries if e.newest_version_id is not None})

        def done(job_ids: list[str]) -> None:
            self.notify(f"queued {len(ids)} update(s) in {len(job_ids)} job(s) (1: Jobs)")

        self.tui.engine_call("queue updates", lambda c: c.queue_updates(ids, None), done=done)
