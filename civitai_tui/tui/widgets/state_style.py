"""Job and file state cells coloured from the theme's ``$state-*`` variables."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text

from civitai_tui.bulk.jobs import FileState
from civitai_tui.tui.themes import DEFAULT_VARIABLES

FILE_STATE_VARIABLE = {
    FileState.PENDING: "state-pending",
    FileState.DOWNLOADING: "state-processing",
    FileState.COMPLETED: "state-completed",
    FileState.SKIPPED: "state-completed",
    FileState.FAILED: "state-failed",
    FileState.CANCELLED: "state-cancelled",
}


def state_text(state: str, variables: Mapping[str, str]) -> Text:
    """``state`` in its theme colour (job states are upper case, file states lower)."""
    name = FILE_STATE_VARIABLE.get(state) or f"state-{state.lower()}"
    color = variables.get(name) or DEFAULT_VARIABLES.get(name, "")
    return Text(state, style=color)
