"""What the three main screens share: access to the app's engine link and state."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

from civitai_tui.tui.state import EngineState

if TYPE_CHECKING:
    from civitai_tui.tui.app import CivitaiTuiApp


class EngineScreen(Screen[None]):
    """A main screen: the app calls :meth:`sync` from its flush timer while it is current."""

    @property
    def tui(self) -> CivitaiTuiApp:
        return cast("CivitaiTuiApp", self.app)

    def sync(self, state: EngineState, *, full: bool = False) -> None:
        """Paint what changed in ``state`` (everything when ``full``)."""

    def on_screen_resume(self) -> None:
        self.repaint_on_resume()

    def repaint_on_resume(self) -> None:
        """What to paint when the screen becomes current again (default: everything)."""
        self.sync(self.tui.state, full=True)
