"""Whether the fleet's shared limits are reachable: one :class:`LimitsLink` per engine.

Every shared limit (API pacing, host connection slots, the placement index) runs
its server calls through :meth:`LimitsLink.call`. A call that cannot reach the
server (refused, reset, timed out) never raises to the downloader: the link turns
*degraded*, remembers why and since when, and the caller falls back to its local
share (1/N of the shared rate, N the last engine count the server gave). While
degraded, the server is tried again at most every ``retry_seconds``; the first
call that works turns the link *shared* again. ``snapshot()`` is what ``fleet
status``, the TUI and the log show; each change of state is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from redis.exceptions import RedisError

from civitai_tui.security.redact import mask_text

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors that mean "no shared limits now" (redis-py wraps most; sockets may not).
UNREACHABLE = (RedisError, OSError, TimeoutError)


class LimitsState(StrEnum):
    SHARED = "shared"  # limits are held on the server, across the fleet
    DEGRADED = "degraded"  # server unreachable: each engine takes 1/N locally


@dataclass(frozen=True)
class LimitsStatus:
    """What ``fleet status`` shows about this engine's limits."""

    state: LimitsState
    since: float  # wall-clock seconds (time.time) of the last change
    reason: str  # why degraded ("" when shared)

    def to_dict(self) -> dict[str, Any]:
        return {"state": str(self.state), "since": self.since, "reason": self.reason}


class LimitsLink:
    """Runs limit calls on the server with a time bound; tracks reachability."""

    def __init__(self, timeout: float = 1.0, retry_seconds: float = 2.0) -> None:
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self._state = LimitsState.SHARED
        self._since = time.time()
        self._reason = ""
        self._retry_at = 0.0  # loop time before which a degraded link does not try

    @property
    def state(self) -> LimitsState:
        return self._state

    def status(self) -> LimitsStatus:
        return LimitsStatus(self._state, self._since, self._reason)

    def snapshot(self) -> dict[str, Any]:
        return self.status().to_dict()

    def worth_trying(self) -> bool:
        """Shared, or degraded long enough that the server deserves another try."""
        return self._state is LimitsState.SHARED or _now() >= self._retry_at

    async def call(self, make: Callable[[], Awaitable[T]]) -> T | None:
        """``make()``'s result, or None when the server is unreachable (link degraded).

        A degraded link does not call at all until its retry time: callers use their
        local share meanwhile. A server that answers with an error (an ACL refusing
        the scripts, a server out of memory) degrades the same way, with its answer as
        the reason: a limit must never fail a download.
        """
        if not self.worth_trying():
            return None
        try:
            async with asyncio.timeout(self.timeout):
                result = await make()
        except UNREACHABLE as exc:
            self._lost(exc)
            return None
        self._reached()
        return result

    def _lost(self, exc: BaseException) -> None:
        self._retry_at = _now() + self.retry_seconds
        if self._state is LimitsState.DEGRADED:
            return
        if isinstance(exc, TimeoutError) and not str(exc):
            reason = f"no answer within {self.timeout:g} s"
        else:
            reason = mask_text(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        self._state, self._since, self._reason = LimitsState.DEGRADED, time.time(), reason
        log.warning(
            "fleet limits: the fleet server is unreachable (%s); pacing at this engine's "
            "share (1/N) until it is back",
            reason,
        )

    def _reached(self) -> None:
        if self._state is LimitsState.SHARED:
            return
        self._state, self._since, self._reason = LimitsState.SHARED, time.time(), ""
        log.warning("fleet limits: the fleet server is back; limits are shared again")


def _now() -> float:
    return asyncio.get_running_loop().time()
