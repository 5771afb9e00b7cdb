"""The top line of every main screen: the mode tabs, the screen's status, help and quit.

The mode switch and the global keys live here, not in the footer, so they show
at any width (the footer drops a screen's later keys when it runs out of room,
never these). Every part is clickable; key labels follow the ``[keymap]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.events import Click
from textual.widgets import Static

if TYPE_CHECKING:
    from civitai_tui.tui.app import CivitaiTuiApp

#: (mode, binding id, tab label) in the order of the keys 1, 2, 3, 4.
MODE_TABS = (
    ("jobs", "nav.jobs", "Jobs"),
    ("performance", "nav.performance", "Performance"),
    ("analytics", "nav.analytics", "Analytics"),
    ("browse", "nav.browse", "Browse"),
)
#: (binding id, label, action) of the global keys shown on the right.
GLOBAL_KEYS = (("app.help", "Help", "help"), ("app.quit", "Quit", "quit"))


class BarItem(Static):
    """One clickable label that runs an app action."""

    def __init__(self, text: str, action: str, *, id: str, classes: str = "") -> None:
        super().__init__(text, id=id, classes=classes)
        self.action = action

    async def on_click(self, event: Click) -> None:
        event.stop()
        await self.app.run_action(self.action)


class ModeBar(Horizontal):
    """Title, ``1 Jobs │ 2 Performance │ 3 Analytics`` (the current one lit), status, keys."""

    DEFAULT_CSS = """
    ModeBar { dock: top; height: 1; background: $panel; color: $foreground; }
    ModeBar > #bar-title { width: auto; padding: 0 1; color: $primary; text-style: bold; }
    ModeBar > .tab { width: auto; padding: 0 1; }
    ModeBar > .tab:hover, ModeBar > .key:hover { background: $boost; }
    ModeBar > .tab.-current { background: $primary; color: $background; text-style: bold; }
    ModeBar > #bar-status {
        width: 1fr; padding: 0 1; text-align: right; text-wrap: nowrap; text-overflow: ellipsis;
    }
    ModeBar > .key { width: auto; padding: 0 1 0 0; }
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    @property
    def tui(self) -> CivitaiTuiApp:
        return cast("CivitaiTuiApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static(escape(self.app.title), id="bar-title")
        for mode, binding_id, label in MODE_TABS:
            current = " -current" if mode == self.mode else ""
            yield BarItem(
                f"[b]{escape(self.tui.key_label(binding_id))}[/b] {label}",
                f"app.switch_mode('{mode}')",
                id=f"tab-{mode}",
                classes=f"tab{current}",
            )
        yield Static("", id="bar-status", markup=False)
        for binding_id, label, action in GLOBAL_KEYS:
            yield BarItem(
                f"[b]{escape(self.tui.key_label(binding_id))}[/b] {label}",
                f"app.{action}",
                id=f"key-{action}",
                classes="key",
            )

    def on_mount(self) -> None:
        self.watch(self.screen, "sub_title", self._status, init=True)

    def _status(self, text: str | None) -> None:
        self.query_one("#bar-status", Static).update(text or "")
