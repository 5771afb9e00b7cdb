"""The levers the optimizer pulls on the downloader, behind a small protocol.

:class:`DownloaderControls` drives a :class:`FileDownloader` (found lazily: the
bulk manager creates its downloader when it starts): per-host connections per
file and in all (the host's budget), the read buffer, and the retry policy's base
delay, all read live by running transfers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from civitai_tui.download.downloader import FileDownloader


class Controls(Protocol):
    def set_host_connections(self, host: str, per_file: int, total: int | None) -> None: ...
    def set_default_host_budget(self, total: int | None) -> None: ...
    def set_chunk_size(self, size: int) -> None: ...
    def set_retry_base(self, delay: float) -> None: ...
    def chunk_size(self) -> int | None: ...


class DownloaderControls:
    """Controls for the downloader returned by ``find`` (None: not started yet)."""

    def __init__(self, find: Callable[[], FileDownloader | None]) -> None:
        self._find = find

    def set_host_connections(self, host: str, per_file: int, total: int | None) -> None:
        downloader = self._find()
        if downloader is not None:
            downloader.set_host_connections(host, per_file, total)

    def set_default_host_budget(self, total: int | None) -> None:
        downloader = self._find()
        if downloader is not None:
            downloader.settings.default_host_budget = total

    def set_chunk_size(self, size: int) -> None:
        downloader = self._find()
        if downloader is not None:
            downloader.settings.buffer_size = size

    def set_retry_base(self, delay: float) -> None:
        downloader = self._find()
        if downloader is not None:
            settings = downloader.settings
            settings.retry = replace(settings.retry, base_delay=delay)

    def chunk_size(self) -> int | None:
        downloader = self._find()
        return downloader.settings.buffer_size if downloader is not None else None
