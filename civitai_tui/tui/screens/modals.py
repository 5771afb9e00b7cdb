"""Small modal dialogs: confirm, pick an export format, a speed limit, and the key help."""

from __future__ import annotations

from typing import TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Static

R = TypeVar("R")


class Dialog(ModalScreen[R]):
    """A small box in the middle of the screen; subclasses compose one ``Vertical``.

    Its CSS applies to every subclass (Textual matches a type selector on any base
    class's name); a subclass adds only its own rules.
    """

    DEFAULT_CSS = """
    Dialog { align: center middle; }
    Dialog > Vertical {
        width: auto; max-width: 90%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    """


class ConfirmScreen(Dialog[bool]):
    """Ask a yes/no question; dismisses True only on ``y``."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="Do it."),
        Binding("n,escape", "answer(False)", "No", id="confirm.no", tooltip="Leave it as it is."),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, id="question", markup=False)
            yield Label("[b]y[/b] yes    [b]n[/b] / [b]esc[/b] no")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class ExportScreen(Dialog[str | None]):
    """Pick the report format: HTML, JSON or PDF."""

    BINDINGS = [
        Binding("h", "pick('html')", "HTML", id="export.html", tooltip="A self-contained page."),
        Binding("j", "pick('json')", "JSON", id="export.json", tooltip="Data for scripts."),
        Binding("p", "pick('pdf')", "PDF", id="export.pdf", tooltip="A printable report."),
        Binding("escape", "pick(None)", "Cancel", id="export.cancel", tooltip="No report."),
    ]

    def __init__(self, days: int) -> None:
        super().__init__()
        self.days = days

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Export the last {self.days} day(s) as…")
            yield Label("[b]h[/b] HTML   [b]j[/b] JSON   [b]p[/b] PDF   [b]esc[/b] cancel")

    def action_pick(self, fmt: str | None) -> None:
        self.dismiss(fmt)


class SpeedLimitScreen(Dialog[str | None]):
    """Type the overall speed limit (``download.max_speed``); the engine checks it."""

    DEFAULT_CSS = "SpeedLimitScreen Input { width: 32; }"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="speed.cancel", tooltip="Keep the limit."),
    ]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Speed limit for all downloads (now {self.current})")
            yield Input(placeholder="e.g. 20MiB, 512KiB, 0 for none", id="speed-limit")
            yield Label("[b]enter[/b] set   [b]esc[/b] cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(Dialog[None]):
    """Every key that works on the screen below, with what it does."""

    DEFAULT_CSS = "HelpScreen DataTable { height: auto; }"
    BINDINGS = [
        Binding("escape,q,question_mark,f1", "close", "Close", id="help.close", tooltip="Back."),
    ]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Keys[/b] (remap them by id in config.toml [keymap])")
            table: DataTable[str] = DataTable(cursor_type="row")
            table.add_columns("Key", "Does", "Id")
            table.add_rows(self.rows)
            yield table

    def action_close(self) -> None:
        self.dismiss(None)
