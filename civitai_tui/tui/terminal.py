"""Whether the full-screen UI has a terminal to draw on (checked before anything starts).

Without one (``ssh host civitai-tui`` with no ``-t``, a pipe, cron) the UI would
print escape codes into the void; the CLI says so and exits 2 instead. A Textual
driver chosen through ``TEXTUAL_DRIVER`` (``textual serve``'s web driver) draws
elsewhere and needs no terminal.
"""

from __future__ import annotations

import os
import sys

NO_TERMINAL = (
    "civitai-tui needs a terminal: use ssh -t, or a CLI command (civitai-tui --help lists them)"
)


def driver_draws_elsewhere() -> bool:
    """True under ``textual serve`` or another driver set in ``TEXTUAL_DRIVER``."""
    return bool(os.environ.get("TEXTUAL_DRIVER"))


def has_terminal() -> bool:
    """Both stdin and stdout are terminals, or the driver needs neither."""
    return driver_draws_elsewhere() or (sys.stdin.isatty() and sys.stdout.isatty())
