"""setup_logging: a real rotating log file in the state dir, always redacted."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from pathlib import Path

import pytest

from civitai_tui.logs import setup_logging
from civitai_tui.security.redact import RedactingFilter, register_secret
from tests.helpers import TOKEN


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield root
    for handler in root.handlers:
        if handler not in before:
            root.removeHandler(handler)
            handler.close()
    for handler in before:
        for f in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(f)
    root.setLevel(level)


def _flush(root: logging.Logger) -> None:
    for handler in root.handlers:
        handler.flush()


def test_token_logged_by_mistake_is_masked_in_the_file(
    tmp_path: Path, clean_root: logging.Logger
) -> None:
    path = setup_logging(tmp_path, "DEBUG")
    assert path == (tmp_path / "logs" / "civitai-tui.log").resolve()
    register_secret("my-registered-secret")
    log = logging.getLogger("civitai_tui.test")
    log.info("headers %s", {"Authorization": f"Bearer {TOKEN}"})
    log.warning("GET https://civitai.com/api/download/models/1?token=%s", TOKEN)
    log.error("leaked my-registered-secret here")
    try:
        raise ValueError(f"failed with key {TOKEN}")
    except ValueError:
        log.exception("request failed")
    _flush(clean_root)
    text = path.read_text()
    assert TOKEN not in text and "my-registered-secret" not in text
    assert "request failed" in text and "ValueError" in text and "***" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_idempotent_and_quiets_http_libraries(tmp_path: Path, clean_root: logging.Logger) -> None:
    first = setup_logging(tmp_path)
    second = setup_logging(tmp_path, "WARNING")
    assert first == second
    ours = [
        h
        for h in clean_root.handlers
        if isinstance(h, RotatingFileHandler) and Path(h.baseFilename) == first
    ]
    assert len(ours) == 1 and ours[0].level == logging.WARNING
    assert all(any(isinstance(f, RedactingFilter) for f in h.filters) for h in clean_root.handlers)
    assert logging.getLogger("aiohttp").level == logging.WARNING
    logging.getLogger("civitai_tui.test").info("not at warning level")
    _flush(clean_root)
    assert "not at warning level" not in first.read_text()
