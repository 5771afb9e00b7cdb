"""The signed link without sockets: reuse, a saved link adopted, one fresh link after a refusal."""

from __future__ import annotations

import time

from civitai_tui.download.link import SignedLink
from civitai_tui.download.request import CivitAISourceRef, ResolvedURL, Source


class Resolves:
    """A resolver handing out ``u1``, ``u2``, ... and recording the sources asked for."""

    def __init__(self, expires_in: float | None = 3600) -> None:
        self.asked: list[Source] = []
        self.expires_in = expires_in

    async def __call__(self, source: Source) -> ResolvedURL:
        self.asked.append(source)
        expires = None if self.expires_in is None else time.time() + self.expires_in
        return ResolvedURL(f"https://store.example/u{len(self.asked)}", expires)


SOURCE = CivitAISourceRef(1, 2)


async def test_a_link_is_resolved_once_and_reused_while_unexpired() -> None:
    resolve = Resolves()
    link = SignedLink(SOURCE, resolve)
    assert link.host() == ""
    assert await link.url() == await link.url() == "https://store.example/u1"
    assert resolve.asked == [SOURCE] and link.host() == "store.example"


async def test_an_expired_link_is_resolved_again() -> None:
    resolve = Resolves(expires_in=-1)  # already expired: every ask resolves again
    link = SignedLink(SOURCE, resolve)
    assert await link.url() == "https://store.example/u1"
    assert await link.url() == "https://store.example/u2"


async def test_a_saved_link_is_adopted_unless_expired_or_one_is_in_use() -> None:
    resolve = Resolves()
    link = SignedLink(SOURCE, resolve)
    link.adopt("https://store.example/old", time.time() - 1)
    link.adopt(None, None)
    assert link.resolved is None
    link.adopt("https://store.example/saved", time.time() + 3600)
    link.adopt("https://store.example/later", time.time() + 3600)
    assert await link.url() == "https://store.example/saved" and resolve.asked == []


async def test_a_refused_link_is_replaced_once_and_only_for_refusals() -> None:
    resolve = Resolves()
    link = SignedLink(SOURCE, resolve)
    first = await link.url()
    assert not await link.refused(first, 404, "m.safetensors")
    assert await link.refused(first, 403, "m.safetensors")
    assert link.resolved is not None and link.resolved.url == "https://store.example/u2"
    assert await link.refused(first, 403, "m.safetensors")  # another connection's refresh
    assert not await link.refused("https://store.example/u2", 401, "m.safetensors")
    assert len(resolve.asked) == 2
