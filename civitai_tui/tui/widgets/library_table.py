"""Browse's library view: a row per model file found in the destination(s), an update badge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath

from rich.text import Text
from textual.widgets import DataTable

from civitai_tui.browse.records import LibraryEntry
from civitai_tui.security.display import printable, rich_text

LIBRARY_COLUMNS = (
    ("model", "Model"),
    ("version", "Version"),
    ("status", "Status"),
    ("file", "File"),
)
UPDATE_BADGE = "▲ update"


def status_of(entry: LibraryEntry) -> str:
    """``"▲ update: v3"``, ``"up to date"`` or ``"not on CivitAI"``."""
    if not entry.known:
        return "not on CivitAI"
    if entry.has_update:
        return f"{UPDATE_BADGE}: {printable(entry.newest_version_name or entry.newest_version_id)}"
    return "up to date"


def library_cells(entry: LibraryEntry) -> tuple[str, str, str, str]:
    return (
        printable(entry.model_name or "?"),
        printable(entry.version_name or ""),
        status_of(entry),
        printable(PurePath(entry.path).name),
    )


class LibraryTable(DataTable[Text]):
    """One row per file keyed by its path; updates first, then by model name."""

    DEFAULT_CSS = """
    LibraryTable { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.entries: dict[str, LibraryEntry] = {}

    def on_mount(self) -> None:
        for key, label in LIBRARY_COLUMNS:
            self.add_column(label, key=key)

    def show(self, entries: Sequence[LibraryEntry], variables: Mapping[str, str]) -> None:
        ordered = sorted(entries, key=lambda e: (not e.has_update, (e.model_name or "~").lower()))
        self.clear()
        self.entries = {e.path: e for e in ordered}
        for entry in ordered:
            cells = [rich_text(c) for c in library_cells(entry)]
            if entry.has_update:
                cells[2].stylize(f"bold {variables.get('warning', '')}".strip())
            self.add_row(*cells, key=entry.path)

    @property
    def selected(self) -> LibraryEntry | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self.entries.get(key) if key is not None else None

    def updates(self) -> list[LibraryEntry]:
        """The entries with a newer version, in the order shown."""
        return [e for e in self.entries.values() if e.has_update]
