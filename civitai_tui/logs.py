"""Process-wide logging: one rotating log file in the state dir, always redacted.

:func:`setup_logging` attaches a rotating file handler (``logs/civitai-tui.log``,
5 MiB x 3 backups, mode 0600) to the root logger and puts a
:class:`RedactingFilter` on every root handler, so a token logged by mistake is
masked before it reaches any output. Chatty HTTP libraries are held at WARNING.
Calling it again changes the level and adds nothing twice.
"""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

from civitai_tui.private import private_dir, private_file
from civitai_tui.security.redact import RedactingFilter

LOG_NAME = "civitai-tui.log"
MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
QUIET_LOGGERS = ("aiohttp", "aiohttp.access", "urllib3", "asyncio")


def _ensure_redacting(handler: logging.Handler) -> None:
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())


def _file_handler(path: Path) -> RotatingFileHandler | None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RotatingFileHandler) and Path(handler.baseFilename) == path:
            return handler
    return None


def setup_logging(state_dir: Path, level: str | int = "INFO") -> Path:
    """Log to ``<state_dir>/logs/civitai-tui.log``; returns the log file's path."""
    log_dir = private_dir(state_dir / "logs")
    path = (log_dir / LOG_NAME).resolve()
    root = logging.getLogger()
    handler = _file_handler(path)
    if handler is None:
        private_file(path)
        handler = RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    handler.setLevel(level)
    for each in root.handlers:
        _ensure_redacting(each)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return path
