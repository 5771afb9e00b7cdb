"""The signed link a file's bytes come from, as aria2 keeps a URI with its expiry.

A :class:`SignedLink` resolves the request's source once and reuses the URL
(also one saved in the control file) while it is unexpired by the safety
margin (``ResolvedURL.expired``); when storage refuses it (401/403/410) the link
is dropped first, so it is never saved for a resume, and resolved afresh once
per download. It also names the storage host, which connection budgets and
error messages go by.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import aiohttp

from civitai_tui.download.request import ResolvedURL, Resolver, Source
from civitai_tui.net.network import network_of
from civitai_tui.net.proxy import Proxy

log = logging.getLogger(__name__)

#: Storage answers that mean "not with this link": a fresh one may work.
REFUSED = frozenset({401, 403, 410})


class SignedLink:
    """One file's storage URL: resolved on demand, reused, replaced once when refused."""

    def __init__(self, source: Source, resolve: Resolver) -> None:
        self._source = source
        self._resolve = resolve
        #: The URL in use (None: none yet, or dropped after a refusal).
        self.resolved: ResolvedURL | None = None
        self._host_of: ResolvedURL | None = None
        self._host_name = ""
        self._refreshed = False
        self._lock = asyncio.Lock()

    async def url(self) -> str:
        """The URL to ask: the one in use, or a fresh one when there is none or it expired."""
        async with self._lock:
            if self.resolved is None or self.resolved.expired():
                self.resolved = await self._resolve(self._source)
            return self.resolved.url

    def adopt(self, url: str | None, expires_at: float | None) -> None:
        """Take a URL saved by an earlier run, unless one is in use or it has expired."""
        if url and self.resolved is None:
            saved = ResolvedURL(url, expires_at)
            if not saved.expired():
                self.resolved = saved

    async def refused(self, used: str, status: int, name: str | None) -> bool:
        """After storage answered ``used`` with ``status``: True when a fresh link is to be
        had (401/403/410, once per download; or another connection already got one)."""
        if status not in REFUSED:
            return False
        async with self._lock:
            if self.resolved is not None and self.resolved.url != used:
                return True  # another connection already refreshed it
            if self._refreshed:
                return False
            self._refreshed = True
            self.resolved = None
            log.info("storage refused the link for %s (HTTP %d); resolving again", name, status)
            fresh = await self._resolve(self._source)
            self.resolved = fresh
            return fresh.url != used

    def host(self) -> str:
        """The storage host ("" before the first URL); cached: budgets ask for every chunk."""
        resolved = self.resolved
        if resolved is not self._host_of:
            self._host_of = resolved
            self._host_name = (urlsplit(resolved.url).hostname or "") if resolved else ""
        return self._host_name

    def route(self, session: aiohttp.ClientSession) -> tuple[str, Proxy | None]:
        """The storage host and the proxy its requests take (for error messages)."""
        resolved = self.resolved
        if resolved is None:
            return "the storage server", None
        host = urlsplit(resolved.url).netloc.rsplit("@", 1)[-1]
        return host, network_of(session).routes.for_url(resolved.url)
