"""The Textual TUI: a thin client of the engine's control API (never downloads, never SQLite)."""
