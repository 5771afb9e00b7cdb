"""civitai-tui: a full-screen terminal download manager for CivitAI models."""

__version__ = "0.1.0"
