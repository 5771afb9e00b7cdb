"""Browse's detail pane: preview, versions (newest first) with files, licence, description.

Everything from the API is put into Rich ``Text`` objects, never into markup
strings: a name like ``[b]x[/b]`` or ``[link=…]`` shows as typed, and escapes
and control characters are dropped (:func:`printable`), line by line for the
description so its paragraphs stay.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from math import ceil
from typing import TYPE_CHECKING, Protocol

from PIL import Image as PILImage
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Container, VerticalScroll
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from civitai_tui.browse.records import FileInfo, ImageRef, ModelDetail, VersionInfo
from civitai_tui.errors import CivitaiTuiError
from civitai_tui.security.display import printable
from civitai_tui.tui.images import PreviewError, Renderer, decode
from civitai_tui.tui.widgets.browse_results import compact_count
from civitai_tui.units import human_bytes

if TYPE_CHECKING:
    from textual.widget import Widget

#: The description is cut after this many characters (a page of HTML can be megabytes).
MAX_DESCRIPTION = 20_000
#: Decoded previews kept in memory (flipping between versions does not decode again).
PREVIEW_CACHE = 16
PREVIEW_ROWS = 10
FETCH_STEP = 64
#: Scan verdicts (CivitAI's words) and the theme colour they show in.
VERDICT_COLOUR = {"success": "success", "pending": "warning", "danger": "error", "error": "error"}


class ImageSource(Protocol):
    async def browse_image(self, url: str, width: int) -> bytes: ...


def _date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "no date"


def age_text(seconds: float) -> str:
    """How old a cached answer is: "fresh", "3 min old", "2 h old"."""
    if seconds < 60:
        return "fresh"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min old"
    return f"{seconds / 3600:.0f} h old"


def description_lines(text: str) -> list[str]:
    """The description as printable lines (escapes and controls gone), blank runs folded."""
    lines: list[str] = []
    cut = len(text) > MAX_DESCRIPTION
    for raw in text[:MAX_DESCRIPTION].splitlines():
        line = printable(raw).rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    if cut:
        lines.append(f"… (cut at {MAX_DESCRIPTION:,} characters; the page has the rest)")
    return lines


class DetailStyle:
    """Rich styles from the theme's colours (``app.theme_variables``); "muted" is dim."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self.variables = variables

    def __call__(self, name: str, bold: bool = False) -> str:
        colour = "dim" if name == "muted" else self.variables.get(name, "")
        return f"bold {colour}".strip() if bold else colour


def _file_line(f: FileInfo, style: DetailStyle) -> Text:
    line = Text("    ")
    line.append(printable(f.name), style=style("foreground", bold=f.primary))
    details = [human_bytes(f.size_bytes), printable(f.format)] + ([printable(f.fp)] if f.fp else [])
    line.append("  " + " ".join(details))
    for label, verdict in (("pickle", f.pickle_scan), ("virus", f.virus_scan)):
        line.append(f"  {label}: ")
        colour = VERDICT_COLOUR.get(verdict.lower(), "muted")
        line.append(printable(verdict) or "?", style=style(colour))
    if f.primary:
        line.append("  (primary)", style=style("muted"))
    return line


def _version_lines(version: VersionInfo, chosen: bool, style: DetailStyle) -> list[Text]:
    head = Text("▶ " if chosen else "  ", style=style("accent", bold=True))
    head.append(printable(version.name), style=style("primary", bold=chosen))
    head.append(f"  {printable(version.base_model)}  {_date(version.published_at)}")
    head.append(f"  {len(version.files)} file(s)", style=style("muted"))
    lines = [head]
    if version.trained_words:
        words = Text("    trigger words: ", style=style("muted"))
        words.append(", ".join(printable(w) for w in version.trained_words))
        lines.append(words)
    lines.extend(_file_line(f, style) for f in version.files)
    return lines


def licence_text(detail: ModelDetail) -> str:
    uses = ", ".join(printable(u) for u in detail.allow_commercial_use) or "none"
    credit = "no credit needed" if detail.allow_no_credit else "credit the creator"
    return f"commercial use: {uses}; {credit}"


def detail_text(detail: ModelDetail, chosen: int, variables: Mapping[str, str]) -> Text:
    """The whole pane below the preview, as one ``Text`` (nothing parsed as markup)."""
    style = DetailStyle(variables)
    s = detail.summary
    out = Text(printable(s.name), style=style("primary", bold=True))
    out.append(f"\nby {printable(s.creator)} · {printable(s.type)} · {printable(s.base_model)}")
    rating = "no rating" if s.rating is None else f"rating {s.rating:.1f}"
    out.append(f"\n{compact_count(s.downloads)} downloads · {rating} · id {s.id}")
    out.append(f"\n{printable(detail.page_url)}", style=style("muted"))
    out.append(f"\nlicence: {licence_text(detail)}")
    out.append(f"\n({age_text(detail.age_s)}; r refreshes)", style=style("muted"))
    out.append(f"\n\nVersions ({len(detail.versions)}, newest first; v/V choose):", style="bold")
    for index, version in enumerate(detail.versions):
        for line in _version_lines(version, index == chosen, style):
            out.append("\n")
            out.append_text(line)
    out.append("\n\nDescription", style="bold")
    for line in description_lines(detail.description_text) or ["(none)"]:
        out.append("\n" + line)
    return out


def pick_preview(detail: ModelDetail, chosen: int, nsfw_level: int) -> ImageRef | None:
    """The chosen version's first picture allowed by ``nsfw_level``, else the model's."""
    images: list[ImageRef] = []
    if 0 <= chosen < len(detail.versions):
        images.extend(detail.versions[chosen].images)
    if detail.summary.preview is not None:
        images.append(detail.summary.preview)
    return next((i for i in images if i.nsfw_level <= nsfw_level), None)


class PreviewBox(Container):
    """One picture, fetched through the engine and decoded in a thread; a note until then."""

    DEFAULT_CSS = f"""
    PreviewBox {{ height: {PREVIEW_ROWS}; width: 1fr; }}
    PreviewBox > #preview-note {{ color: $text-muted; height: 1; }}
    """

    def __init__(self, renderer: Renderer, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.renderer = renderer
        self.shown: tuple[str, tuple[int, int]] | None = None  # (url, pixel box) drawn now
        self._wanted: tuple[ImageSource, ImageRef] | None = None  # drawn again on a resize
        self._cache: OrderedDict[tuple[str, tuple[int, int]], PILImage.Image] = OrderedDict()

    def compose(self) -> ComposeResult:
        yield Static("", id="preview-note", markup=False)

    def note(self, text: str) -> None:
        line = self.query_one("#preview-note", Static)
        line.update(text)
        line.display = bool(text)

    def _picture_widget(self) -> Widget | None:
        found = list(self.query(self.renderer.widget))
        return found[0] if found else None

    def clear(self, why: str) -> None:
        self.shown = self._wanted = None
        picture = self._picture_widget()
        if picture is not None:
            picture.remove()
        self.note(why)

    def box(self) -> tuple[int, int]:
        """The pixel size the pane has room for."""
        return self.renderer.pixels(max(self.size.width, 8), PREVIEW_ROWS - 1)

    def show(self, source: ImageSource, image: ImageRef | None, hidden_reason: str) -> None:
        """Fetch, decode and draw ``image`` (never blocks); ``None`` shows ``hidden_reason``."""
        if image is None:
            self.clear(hidden_reason)
            return
        self._wanted = (source, image)
        if not self.size.width:
            return  # not laid out yet: on_resize draws it at the right size
        key = (image.url, self.box())
        if key == self.shown:
            return
        self.note("loading the preview…")
        self._load(source, key)

    def on_resize(self) -> None:
        if self._wanted is not None:
            self.show(*self._wanted, "")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A bug while fetching or drawing is said in the pane (and logged), not swallowed."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.log.error("preview failed", error)
            self.clear(f"no preview: unexpected {type(error).__name__}: {printable(error)}")

    @work(exclusive=True, group="preview", exit_on_error=False)
    async def _load(self, source: ImageSource, key: tuple[str, tuple[int, int]]) -> None:
        url, box = key
        picture = self._cache.get(key)
        if picture is None:
            try:
                # a width in steps of FETCH_STEP: a pane a few cells wider needs no new fetch
                data = await source.browse_image(url, -(-box[0] // FETCH_STEP) * FETCH_STEP)
                picture = await asyncio.to_thread(decode, data, box)
            except CivitaiTuiError as err:
                self.clear(f"no preview: {printable(err.message)}")
                return
            except PreviewError as err:
                self.clear(f"no preview: {err}")
                return
            self._cache[key] = picture
            while len(self._cache) > PREVIEW_CACHE:
                self._cache.popitem(last=False)
        self._draw(picture)
        self.shown = key

    def _draw(self, picture: PILImage.Image) -> None:
        """Put ``picture`` on screen at its own size in cells (it was shrunk to fit)."""
        cells_wide = ceil(picture.width / self.renderer.cell_width)
        cells_high = ceil(picture.height / self.renderer.cell_height)
        widget = self._picture_widget()
        if widget is None:
            widget = self.renderer.widget(picture)  # type: ignore[call-arg]
            widget.styles.width, widget.styles.height = cells_wide, cells_high
            self.mount(widget)
        else:
            widget.styles.width, widget.styles.height = cells_wide, cells_high
            widget.image = picture  # type: ignore[attr-defined]
        self.note("")


class ModelDetailPane(VerticalScroll):
    """The preview above the text; scrolls with the keyboard when focused."""

    DEFAULT_CSS = """
    ModelDetailPane { border-left: solid $primary; padding: 0 1; height: 1fr; }
    ModelDetailPane > #detail-text { height: auto; }
    """

    def __init__(self, renderer: Renderer, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.renderer = renderer

    def compose(self) -> ComposeResult:
        yield PreviewBox(self.renderer, id="preview")
        yield Static("", id="detail-text", markup=False)

    @property
    def preview(self) -> PreviewBox:
        return self.query_one(PreviewBox)

    def show_text(self, text: Text | str) -> None:
        self.query_one("#detail-text", Static).update(text)
