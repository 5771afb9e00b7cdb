"""Choose which files of one model version to queue (Browse's ``A``)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Label, SelectionList
from textual.widgets.selection_list import Selection

from civitai_tui.browse.records import VersionInfo
from civitai_tui.security.display import printable
from civitai_tui.tui.screens.modals import Dialog
from civitai_tui.units import human_bytes


def file_label(name: str, size: int, fmt: str, fp: str | None) -> Text:
    """One file as a ``Text`` (a name is never read as markup)."""
    parts = [printable(name), human_bytes(size), printable(fmt)] + ([printable(fp)] if fp else [])
    return Text(" ".join(parts))


class PickFilesScreen(Dialog[list[int] | None]):
    """Dismisses with the chosen file ids (the primary file ticked to start), or None."""

    DEFAULT_CSS = "PickFilesScreen SelectionList { height: auto; max-height: 16; }"
    BINDINGS = [
        Binding("ctrl+s", "done", "Queue these", id="pick.done", tooltip="Preview the ticked."),
        Binding("escape", "cancel", "Cancel", id="pick.cancel", tooltip="Queue nothing."),
    ]

    def __init__(self, version: VersionInfo) -> None:
        super().__init__()
        self.version = version

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Files of {printable(self.version.name)}", markup=False)
            yield SelectionList[int](
                *(
                    Selection(file_label(f.name, f.size_bytes, f.format, f.fp), f.id, f.primary)
                    for f in self.version.files
                ),
                id="pick-files",
            )
            yield Label("[b]space[/b] tick   [b]ctrl+s[/b] preview and queue   [b]esc[/b] cancel")

    def action_done(self) -> None:
        chosen = self.query_one(SelectionList).selected
        if not chosen:
            self.notify("tick at least one file (space)", severity="warning")
            return
        self.dismiss(list(chosen))

    def action_cancel(self) -> None:
        self.dismiss(None)
