"""Browse (mode 4) by keyboard: search, filters, paging, detail, previews, queueing, library."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static
from textual_image.widget import HalfcellImage

from civitai_tui.browse.records import LibraryEntry
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.tui.app import CivitaiTuiApp, make_app
from civitai_tui.tui.screens import browse
from civitai_tui.tui.screens.add_job import AddJobScreen
from civitai_tui.tui.screens.browse import BrowseScreen
from civitai_tui.tui.screens.modals import ConfirmScreen
from civitai_tui.tui.screens.pick_files import PickFilesScreen
from tests.tui.conftest import until
from tests.tui.scripted_browse import HOSTILE_NAME, LIBRARY, ScriptedBrowse

SIZE = (80, 24)


def browse_app(home: Path, engine: ScriptedBrowse, config: str = "") -> CivitaiTuiApp:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(config)
    return make_app(engine, home, follow_engine=False)  # type: ignore[arg-type]


async def opened(pilot: Pilot[None]) -> BrowseScreen:
    """Press 4 and wait for the first page."""
    await pilot.press("4")
    screen = pilot.app.screen
    assert isinstance(screen, BrowseScreen)
    await until(pilot, lambda: screen.results.row_count >= 20)
    return screen


def shown_text(screen: BrowseScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_search_box_sends_the_words_and_shows_only_matches(isolated_home: Path) -> None:
    engine = ScriptedBrowse()
    app = browse_app(isolated_home, engine)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"model 01", "enter")
        await until(pilot, lambda: engine.searches[-1].query == "model 01")
        await until(pilot, lambda: 0 < screen.results.row_count < 20)
        names = [m.name for m in screen.results.models.values()]
        assert names and all("01" in n and "model" in n.lower() for n in names)
        assert app.focused is screen.results  # back on the list, ready to move
        assert "“model 01”" in shown_text(screen, "#browse-filters")


async def test_every_filter_changes_from_the_keyboard_and_searches_again(
    isolated_home: Path,
) -> None:
    engine = ScriptedBrowse()
    app = browse_app(isolated_home, engine)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot)
        for key in ("t", "b", "b", "b", "b", "b", "s", "p", "n"):
            await pilot.press(key)
        await until(pilot, lambda: screen.results.row_count > 0 and not screen.loading_more)
        query = screen.browse_query
        assert query.types == ("Checkpoint",) and query.base_models == ("SDXL 1.0",)
        assert (query.sort, query.period, query.nsfw) == ("Most Downloaded", "Year", True)
        await until(pilot, lambda: engine.searches[-1].types == ("Checkpoint",))
        assert engine.searches[-1].cursor is None or engine.searches[-2].cursor is None
        models = screen.results.models.values()
        assert all(m.type == "Checkpoint" and m.base_model == "SDXL 1.0" for m in models)
        line = shown_text(screen, "#browse-filters")
        assert "t type Checkpoint" in line and "b base SDXL 1.0" in line and "NSFW on" in line
        await pilot.press("T", "S")  # shifted: back again
        assert screen.browse_query.types == () and screen.browse_query.sort == "Highest Rated"


async def test_results_page_in_as_the_cursor_moves_and_the_list_stays_usable(
    isolated_home: Path,
) -> None:
    engine = ScriptedBrowse(count=130)
    app = browse_app(isolated_home, engine)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot)
        first = screen.results.row_count
        engine.gate = asyncio.Event()  # the next page hangs until the test lets it go
        await pilot.press("end")
        await until(pilot, lambda: screen.loading_more)
        rows = screen.results.row_count
        await pilot.press("up", "up", "home")  # the list moves while the page is on its way
        assert screen.results.cursor_row == 0 and screen.results.row_count == rows
        engine.gate.set()
        engine.gate = None
        await until(pilot, lambda: screen.results.row_count > rows)
        assert rows >= first
        for _ in range(8):
            await pilot.press("end")
            await until(pilot, lambda: not screen.loading_more)
        assert screen.results.row_count == 130
        assert screen.next_cursor is None
        assert "130 models" in shown_text(screen, "#browse-filters")
        cursors = [q.cursor for q in engine.searches]
        assert cursors[0] is None and len(set(cursors)) == len(cursors)  # each page once


async def test_a_page_of_an_older_search_is_dropped(isolated_home: Path) -> None:
    engine = ScriptedBrowse()
    app = browse_app(isolated_home, engine)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot)
        engine.gate = asyncio.Event()
        await pilot.press("t")  # Checkpoint, held
        await pilot.press("t")  # TextualInversion
        engine.gate.set()
        await until(pilot, lambda: screen.results.row_count and not screen.loading_more)
        await pilot.pause(0.2)
        assert {m.type for m in screen.results.models.values()} == {"TextualInversion"}


async def test_detail_shows_versions_files_scans_and_hostile_text_as_text(
    isolated_home: Path,
) -> None:
    engine = ScriptedBrowse()
    app = browse_app(isolated_home, engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await opened(pilot)
        screen.results.move_cursor(row=3)  # the model with the hostile name and description
        await pilot.press("enter")
        await until(pilot, lambda: screen.detail is not None)
        text = shown_text(screen, "#detail-text")
        assert text.index("v3.0") < text.index("v2.0") < text.index("v1.0")  # newest first
        assert "model_1003_v3.safetensors" in text and "pickle: Success" in text
        assert "virus: Success" in text and "PickleTensor" in text and "fp16" in text
        assert "trigger words: trigger one, [i]word3[/i]" in text
        assert "commercial use: Image, Rent; credit the creator" in text
        assert "[b]bold[/b] [link=https://evil.example]x[/link]" in text  # typed, not applied
        assert "[red]not red[/red] and [@click=app.quit]quit[/]" in text
        assert "\x1b" not in text and "\x07" not in text
        assert "<p>huge</p>" in text and "cut at 20,000 characters" in text
        row = screen.results.cells_of(1003)["name"]
        assert row.startswith("[b]bold[/b]") and "\x1b" not in row
        assert HOSTILE_NAME not in text  # the escape sequences were dropped
        await until(pilot, lambda: bool(screen.pane.preview.query(HalfcellImage)))
        assert engine.images[-1][0] == "https://image.example/1003/3.png"
        assert engine.images[-1][1] % 64 == 0  # fetched at the pane's width, in steps


async def test_versions_choose_the_preview_within_the_nsfw_level(isolated_home: Path) -> None:
    engine = ScriptedBrowse()
    app = browse_app(isolated_home, engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await opened(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: screen.pane.preview.shown is not None)
        await pilot.press("v", "v")  # v1.0, whose only picture is NSFW level 4
        await until(pilot, lambda: screen.version_index == 2)
        await until(pilot, lambda: "1000/0.png" in (screen.pane.preview.shown or ("",))[0])
        assert not any("/1.png" in url for url, _ in engine.images)
        assert "▶ v1.0" in shown_text(screen, "#detail-text")


async def test_a_queues_the_chosen_version_through_the_add_preview(isolated_home: Path) -> None:
    engine = ScriptedBrowse()
    app = browse_app(isolated_home, engine)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot)
        await pilot.press("a")  # from the list: the newest version
        await until(pilot, lambda: isinstance(app.screen, AddJobScreen))
        await until(pilot, lambda: ("preview", "model:1000") in engine.calls)
        await pilot.press("escape")
        await pilot.press("enter", "v")
        await until(pilot, lambda: screen.version_index == 1)
        await pilot.press("a")
        await until(pilot, lambda: ("preview", "version:10002") in engine.calls)
        preview = str(app.screen.query_one("#add-preview", Static).render())
        assert "free after" in preview and "already present" in preview
        await pilot.press("ctrl+s")
        await until(pilot, lambda: ("add", "version:10002") in engine.calls)
        await until(pilot, lambda: app.screen is screen)


async def test_shift_a_queues_the_files_ticked(isolated_home: Path) -> None:
    engine = ScriptedBrowse()
    app = browse_app(isolated_home, engine)
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, PickFilesScreen))
        await pilot.press("down", "space", "ctrl+s")  # the .ckpt too (the primary is ticked)
        await until(pilot, lambda: isinstance(app.screen, AddJobScreen))
        urls = [
            "https://civitai.com/api/download/models/10003?fileId=100006",
            "https://civitai.com/api/download/models/10003?fileId=100007",
        ]
        await until(pilot, lambda: ("preview", *urls) in engine.calls)


async def test_o_copies_the_page_url_and_r_asks_again(isolated_home: Path) -> None:
    engine = ScriptedBrowse()
    app = browse_app(isolated_home, engine)
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)
        await pilot.press("o")
        assert app.clipboard == "https://civitai.com/models/1000"
        await pilot.press("r")
        await until(pilot, lambda: ("browse_search", "True") in engine.calls)


async def test_library_view_badges_updates_and_queues_them(isolated_home: Path) -> None:
    engine = ScriptedBrowse()
    app = browse_app(isolated_home, engine)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot)
        await pilot.press("L")
        await until(pilot, lambda: screen.library.row_count == len(LIBRARY))
        first = screen.library.selected
        assert first is not None and first.has_update  # updates first
        cells = [str(c) for c in screen.library.get_row_at(0)]
        assert cells[2] == "▲ update: v3.0"
        assert "1 with an update" in screen.sub_title
        assert "library: 3 model file(s)" in shown_text(screen, "#browse-filters")
        await pilot.press("u")
        await until(pilot, lambda: ("queue_updates", "10013") in engine.calls)
        await pilot.press("U")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: engine.calls.count(("queue_updates", "10013")) == 2)
        await pilot.press("t")  # a results key does nothing here
        assert screen.browse_query.types == ()
        await pilot.press("escape")
        assert screen.view == "results" and app.focused is screen.results


async def test_the_detail_beside_the_list_follows_the_cursor_once_it_rests(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browse, "FOLLOW_DELAY", 3.0)  # three keys always pass within it
    engine = ScriptedBrowse()
    app = browse_app(isolated_home, engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await opened(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: screen.detail is not None)
        assert screen.results.display  # beside, not instead
        await pilot.press("down", "down", "down")
        assert screen.detail.summary.id == 1000  # still resting on the first
        await until(pilot, lambda: screen.detail is not None and screen.detail.summary.id == 1003)
        asked = [c for c in engine.calls if c[0] == "browse_model"]
        assert asked == [("browse_model", "1000"), ("browse_model", "1003")]  # not every row
        await pilot.press("escape")
        assert not screen.has_class("-detail")


async def test_a_library_the_engine_cannot_check_says_why_on_screen(isolated_home: Path) -> None:
    engine = ScriptedBrowse()

    async def refuse(dest: list[str] | None = None, refresh: bool = False) -> list[LibraryEntry]:
        raise CivitaiTuiError(FailureKind.BAD_CONFIG, "no destination to check: set bulk.dest")

    engine.library = refuse  # type: ignore[method-assign]
    app = browse_app(isolated_home, engine)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(pilot)
        await pilot.press("L")
        await until(pilot, lambda: "set bulk.dest" in shown_text(screen, "#browse-filters"))
        await pilot.press("escape")  # back to the list: its own line again
        assert "t type any" in shown_text(screen, "#browse-filters")


async def test_a_higher_browse_nsfw_level_lets_that_preview_show(isolated_home: Path) -> None:
    engine = ScriptedBrowse()
    app = browse_app(isolated_home, engine, "[browse]\nnsfw_level = 4\n")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await opened(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: screen.pane.preview.shown is not None)
        await pilot.press("v", "v")
        await until(pilot, lambda: "1000/1.png" in (screen.pane.preview.shown or ("",))[0])
