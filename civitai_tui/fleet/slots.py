"""Connections to one storage host shared by every engine: :class:`SharedHostSlots`.

A storage server limits connections per client address, so engines behind one
egress address (:mod:`.egress`) must share one budget per host. The budget is a
semaphore on the server with expiring slots: each engine *holds* a number of
slots on ``host|egress``, renewed every ``renew`` seconds with a time to live of
``ttl``; a dead engine's slots lapse with it. One Lua script renews and resizes:

* the engine says what it **wants** (its optimizer's budget for the host, or
  the connections its files would open) and what it has **in use**;
* it is **granted** ``min(want, cap - held by others, max(fair, cap - wanted by
  others))``: never more than the others leave free, and at least its fair share
  ``cap // engines`` once the others shed what they hold over theirs, so a newcomer
  is not starved by an engine that came first;
* it keeps holding ``max(granted, in use)`` until its connections really close.

``cap`` is the smaller of the caller's ceiling (the optimizer's per-host maximum)
and a **learned** ceiling: when an engine's optimizer learns the host's
connection limit from a burst of 503/429 refusals, it reports the connections
the whole fleet had served (its own limit + what the others held), and every
engine is held under that for an hour.

The downloader asks :meth:`granted` synchronously for every connection it would
open (``DownloadSettings.shared_budget``); a host not yet asked about gets 0
until the first renewal answers (a wake-up, not a poll). While the server is
unreachable each engine takes ``cap // N`` (N: the engines last seen on the
host, at least one slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from redis.asyncio import Redis

from civitai_tui.aio import wait_event
from civitai_tui.download.transfer import HostPool
from civitai_tui.fleet.link import LimitsLink

log = logging.getLogger(__name__)

#: A learned ceiling holds this long, then the optimizers may find a higher one (ms).
LEARNED_TTL_MS = 3_600_000

# KEYS: holders ZSET (engine -> expiry ms), held HASH, wanted HASH, learned STRING.
# ARGV: engine, want, in use, ceiling, ttl ms, learned total (0: none), learned ttl ms.
# Returns {granted, cap, engines on the host, held by the others}.
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, e in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('HDEL', KEYS[2], e)
  redis.call('HDEL', KEYS[3], e)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local me, want, in_use = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl = tonumber(ARGV[5])
if tonumber(ARGV[6]) > 0 then
  redis.call('SET', KEYS[4], ARGV[6], 'PX', ARGV[7])
end
local cap = tonumber(ARGV[4])
local learned = tonumber(redis.call('GET', KEYS[4]) or cap)
if learned < cap then cap = learned end
local held_others, want_others, others = 0, 0, 0
local held = redis.call('HGETALL', KEYS[2])
for i = 1, #held, 2 do
  if held[i] ~= me then
    held_others = held_others + tonumber(held[i + 1])
    others = others + 1
  end
end
local wanted = redis.call('HGETALL', KEYS[3])
for i = 1, #wanted, 2 do
  if wanted[i] ~= me then want_others = want_others + tonumber(wanted[i + 1]) end
end
local fair = math.floor(cap / (others + 1))
local grant = math.min(want, cap - held_others, math.max(fair, cap - want_others))
if grant < 0 then grant = 0 end
local hold = math.max(grant, in_use)
if hold == 0 and want == 0 then
  redis.call('ZREM', KEYS[1], me)
  redis.call('HDEL', KEYS[2], me)
  redis.call('HDEL', KEYS[3], me)
  return {0, cap, others, held_others}
end
redis.call('ZADD', KEYS[1], now + ttl, me)
redis.call('HSET', KEYS[2], me, hold)
redis.call('HSET', KEYS[3], me, want)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl * 3) end
return {grant, cap, others + 1, held_others}
"""


@dataclass
class HostShare:
    """What this engine knows of one host's shared budget."""

    granted: int = 0
    cap: int = 0
    engines: int = 1
    held_by_others: int = 0
    #: The optimizer's learned limit already reported (only a change is reported again).
    reported: int | None = None

    def to_dict(self) -> dict[str, int]:
        return {
            "granted": self.granted,
            "cap": self.cap,
            "engines": self.engines,
            "held_by_others": self.held_by_others,
        }


class SharedHostSlots:
    """This engine's slots on each storage host it downloads from (``shared_budget``)."""

    def __init__(
        self,
        redis: Redis,
        link: LimitsLink,
        engine: str,
        egress: Callable[[str], str],
        pool: Callable[[], HostPool | None],
        ceiling: Callable[[str], int],
        learned: Callable[[str], int | None] = lambda _host: None,
        renew: float = 1.0,
        ttl: float = 10.0,
    ) -> None:
        self._redis = redis
        self._link = link
        self.engine = engine
        self.egress = egress
        self._pool = pool
        self._ceiling = ceiling
        self._learned = learned
        self.renew = renew
        self.ttl = ttl
        self.hosts: dict[str, HostShare] = {}
        self._hold = redis.register_script(_HOLD)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --------------------------------------------------- the downloader's side
    def granted(self, host: str) -> int:
        """Connections this engine may have open to ``host`` now (0 until asked)."""
        share = self.hosts.get(host)
        if share is None:
            self.hosts[host] = HostShare()
            self._wake.set()
            return 0
        return share.granted

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fleet-host-slots")

    async def stop(self) -> None:
        """Stop renewing and hand back every slot (the others need not wait out the TTL)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for host in list(self.hosts):
            await self._link.call(partial(self._call, host, 0, 0, 0))

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sync()
            except Exception:  # the limits must never take downloads down
                log.exception("fleet host slots: renewal failed")
            await wait_event(self._wake, self.renew)

    # ---------------------------------------------------------------- renewal
    def _key(self, host: str) -> list[str]:
        base = f"ctf:limits:host:{{{host}|{self.egress(host)}}}"
        return [base + ":holders", base + ":held", base + ":wanted", base + ":learned"]

    async def _call(self, host: str, want: int, in_use: int, learned: int) -> list[int]:
        args = [self.engine, want, in_use, self._ceiling(host), round(self.ttl * 1000)]
        args += [learned, LEARNED_TTL_MS]
        return [int(v) for v in await self._hold(keys=self._key(host), args=args)]

    async def sync(self) -> None:
        """Renew every host this engine uses; resize, and tell the downloader of changes."""
        pool = self._pool()
        if pool is None:
            return
        for host in set(self.hosts) | pool.hosts():
            in_use, want = pool.demand(host)
            share = self.hosts.setdefault(host, HostShare())
            limit, learned = self._to_report(host, share)
            answer = await self._link.call(partial(self._call, host, want, in_use, learned))
            old = share.granted
            if answer is None:  # unreachable: this engine's share of the last known cap
                cap = share.cap or self._ceiling(host)
                share.granted = min(want, max(1, cap // max(1, share.engines)))
            else:
                share.granted, share.cap, engines, share.held_by_others = answer
                share.engines = max(1, engines)
                if learned:
                    share.reported = limit
            if want == 0 and in_use == 0:
                del self.hosts[host]
            elif share.granted != old:
                log.info(
                    "fleet: %s connections to %s (of %d shared by %d engines)",
                    share.granted,
                    host,
                    share.cap,
                    share.engines,
                )
                pool.reshare(host)

    def _to_report(self, host: str, share: HostShare) -> tuple[int | None, int]:
        """The optimizer's learned limit, and the fleet-wide one to report when it is new
        (its own connections still served + what the others held; 0: nothing new)."""
        limit = self._learned(host)
        if limit is None or limit == share.reported:
            return limit, 0
        return limit, limit + share.held_by_others

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {host: share.to_dict() for host, share in self.hosts.items()}
