"""The add dialog: any TARGET with filters, a preview from the engine, then queue it.

``ctrl+s`` queues exactly what the last preview showed; if the fields changed
since, it previews again first. The destination is resolved here, in the UI's
process (the field, else ``bulk.dest``, else the UI's current folder), sent as
an absolute path and shown with the preview: the engine runs in another folder.
Every error (a bad target, an unknown id, a missing token, no engine) is shown
inline.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from civitai_tui.bulk.jobs import JobOptions, resolve_dest
from civitai_tui.errors import CivitaiTuiError
from civitai_tui.security.display import markup_safe
from civitai_tui.units import human_bytes

if TYPE_CHECKING:
    from civitai_tui.tui.bridge import EngineAPI

PREVIEW_ITEMS = 5


class FormError(ValueError):
    """A field the user must fix."""


@dataclass(frozen=True)
class AddRequest:
    """What the fields say: targets, job options and priority."""

    targets: tuple[str, ...]
    options: JobOptions
    priority: int


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _int_field(label: str, text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise FormError(f"{label} must be a whole number, not {text!r}") from None


def parse_form(
    targets: str,
    types: str,
    base_models: str,
    limit: str,
    dest: str,
    priority: str,
    default_dest: str = "",
) -> AddRequest:
    """The fields as a request (``dest`` absolute); :class:`FormError` names a wrong field."""
    try:
        parts = shlex.split(targets)
    except ValueError as exc:
        raise FormError(f"targets: {exc} (check the quotes)") from None
    if not parts:
        raise FormError("type at least one target, e.g. model:123 or user:NAME")
    limit_value = _int_field("limit", limit)
    if limit_value is not None and limit_value < 1:
        raise FormError("limit must be at least 1")
    try:
        where = str(resolve_dest(dest.strip(), default_dest))
    except (OSError, RuntimeError) as exc:
        raise FormError(f"destination: {exc}") from None
    options = JobOptions(
        dest=where,
        limit=limit_value,
        types=tuple(_split(types)),
        base_models=tuple(_split(base_models)),
    )
    return AddRequest(tuple(parts), options, _int_field("priority", priority) or 0)


def _free_after(preview: dict[str, Any]) -> str:
    """ "; 1.2 GiB free after (3.4 GiB now)" on the destination's disk, when the engine knows."""
    free = preview.get("free_bytes")
    if not isinstance(free, int):
        return ""
    after = free - int(preview["download_bytes"])
    if after < 0:
        return f"; [$error]not enough space[/]: {human_bytes(free)} free"
    return f"; {human_bytes(after)} free after ({human_bytes(free)} now)"


def describe_preview(preview: dict[str, Any]) -> str:
    """The preview in a few lines of markup."""
    lines = [
        f"[b]{preview['files']}[/b] file(s), {human_bytes(preview['total_bytes'])} in all; "
        f"[b]{preview['already_present']}[/b] already present; "
        f"[b]{preview.get('from_library', 0)}[/b] placed from copies in the library; "
        f"{human_bytes(preview['download_bytes'])} to download" + _free_after(preview)
    ]
    for item in preview.get("items", [])[:PREVIEW_ITEMS]:
        mark = " (present)" if item.get("present") else ""
        mark = " (from the library)" if item.get("copy_from") else mark
        lines.append(
            f"  {markup_safe(str(item['name']))}  {markup_safe(str(item.get('type') or ''))}  "
            f"{human_bytes(item.get('size'))}{mark}"
        )
    extra = preview["files"] - min(preview["files"], PREVIEW_ITEMS)
    if extra:
        lines.append(f"  … and {extra} more")
    return "\n".join(lines)


class AddJobScreen(ModalScreen[dict[str, Any] | None]):
    """Dismisses with the queued job's summary, or None when closed."""

    DEFAULT_CSS = """
    AddJobScreen { align: center middle; }
    AddJobScreen > Vertical {
        width: 90%; max-width: 110; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    AddJobScreen Input { margin: 0; }
    AddJobScreen Horizontal { height: auto; }
    AddJobScreen Horizontal > Input { width: 1fr; }
    AddJobScreen #add-error { color: $error; height: auto; }
    AddJobScreen #add-preview { height: auto; min-height: 1; }
    """
    BINDINGS = [
        Binding(
            "f5",
            "preview",
            "Preview",
            id="add.preview",
            tooltip="Ask the engine what this would download.",
        ),
        Binding(
            "ctrl+s", "queue", "Queue", id="add.queue", tooltip="Queue what the preview shows."
        ),
        Binding("escape", "close", "Close", id="add.close", tooltip="Close without queueing."),
    ]

    def __init__(
        self, client: EngineAPI, default_dest: str = "", *, targets: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.client = client
        self.default_dest = default_dest  # bulk.dest; "" = this process's current folder
        self.previewed: AddRequest | None = None
        self.targets = tuple(targets)  # filled in, and previewed at once (Browse's ``a``)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Add downloads[/b]  enter/F5 preview · ctrl+s queue · esc close")
            yield Input(
                placeholder='model:123  version:456  URL  user:NAME  tag:NAME  search:"query"',
                id="targets",
            )
            with Horizontal():
                yield Input(placeholder="types: LORA,Checkpoint", id="types")
                yield Input(placeholder="base models: SDXL 1.0", id="base-models")
            with Horizontal():
                yield Input(placeholder="limit (bulk targets)", id="limit")
                yield Input(placeholder="priority (0)", id="priority")
            default = self.default_dest or "the current folder"
            yield Input(placeholder=f"destination folder (default: {default})", id="dest")
            yield Static("", id="add-error", markup=False)
            yield Static("", id="add-preview")

    def on_mount(self) -> None:
        if self.targets:
            self.query_one("#targets", Input).value = shlex.join(self.targets)
            self.action_preview()

    def _request(self) -> AddRequest:
        def value(name: str) -> str:
            return self.query_one(f"#{name}", Input).value

        return parse_form(
            value("targets"),
            value("types"),
            value("base-models"),
            value("limit"),
            value("dest"),
            value("priority"),
            self.default_dest,
        )

    def _show_error(self, message: str) -> None:
        self.query_one("#add-error", Static).update(message)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_preview()

    def action_preview(self) -> None:
        try:
            request = self._request()
        except FormError as err:
            self._show_error(str(err))
            return
        self._run_preview(request)

    def action_queue(self) -> None:
        try:
            request = self._request()
        except FormError as err:
            self._show_error(str(err))
            return
        if request != self.previewed:
            self._run_preview(request)
            self.notify("Previewing first: check it, then press ctrl+s again.")
            return
        self._run_add(request)

    def action_close(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="add", exit_on_error=False)
    async def _run_preview(self, request: AddRequest) -> None:
        self._show_error("")
        self.query_one("#add-preview", Static).update("asking the engine…")
        try:
            preview = await self.client.preview(list(request.targets), request.options.to_dict())
        except CivitaiTuiError as err:
            self.previewed = None
            self.query_one("#add-preview", Static).update("")
            self._show_error(err.message)
            return
        self._show_error("\n".join(preview.get("errors", [])))
        self.previewed = request if preview["files"] else None
        into = f"into [b]{markup_safe(request.options.dest)}[/b]\n"
        self.query_one("#add-preview", Static).update(into + describe_preview(preview))

    @work(exclusive=True, group="add", exit_on_error=False)
    async def _run_add(self, request: AddRequest) -> None:
        try:
            job = await self.client.add(
                list(request.targets), priority=request.priority, options=request.options.to_dict()
            )
        except CivitaiTuiError as err:
            self._show_error(err.message)
            return
        self.dismiss(job)
