"""``python -m civitai_tui`` runs the CLI."""

from civitai_tui.cli import main

main()
