"""CivitAI API pacing shared by every engine using one key: :class:`SharedRateLimiter`.

It has the interface of :class:`civitai_tui.civitai.politeness.RateLimiter` (the
client cannot tell them apart) and keeps the same rules, held on the server so
they hold across machines:

* **Rate.** A GCRA token bucket in one Lua script per request, on the server's
  clock: the script reserves the next slot and says how long to wait for it, so
  each request costs one round trip and the fleet together stays at ``rate``
  requests a second (``burst`` at once).
* **Backoff.** A 429/503 seen by any engine halves the shared rate (at most once
  a second: a burst of refusals is one signal), and a ``Retry-After`` pushes the
  next slot of *every* engine past it; each request that goes through wins back
  a share of the ceiling, as the local limiter does.
* **Key.** State lives under the HMAC of the API token (:mod:`.keyid`), never the
  token; the engines seen using it in the last minute are counted there too.
* **Server gone.** Pacing falls back to a local limiter at ``rate / N`` (N: the
  engines last seen on this key), so the fleet together still stays under the
  shared rate; it rejoins the shared bucket when the server answers again.

Each engine passes its own ``api.*`` ceiling; engines sharing a key should agree
on it (the bucket paces each request at the caller's ceiling).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio import Redis

from civitai_tui.civitai.politeness import RateLimiter
from civitai_tui.fleet.keyid import KeyIds
from civitai_tui.fleet.link import LimitsLink

#: An engine counts towards N for this long after its last request (ms).
MEMBER_TTL_MS = 60_000
#: A burst of refusals halves the shared rate once in this window (ms).
SLOW_WINDOW_MS = 1_000

# KEYS: bucket HASH, engines ZSET.  ARGV: ceiling, burst, engine, recovery, member ttl.
# Returns {wait ms, rate now, engines on this key, the slot (server ms)}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ceiling, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local rate = tonumber(redis.call('HGET', KEYS[1], 'rate') or ceiling)
if rate > ceiling then rate = ceiling end
local interval = 1000 / rate
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or now)
if tat < now then tat = now end
local wait = tat - now - (burst - 1) * interval
if wait < 0 then wait = 0 end
rate = math.min(ceiling, rate + tonumber(ARGV[4]) * ceiling)
redis.call('HSET', KEYS[1], 'tat', tat + interval, 'rate', rate)
redis.call('PEXPIRE', KEYS[1], 3600000)
local ttl = tonumber(ARGV[5])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('PEXPIRE', KEYS[2], ttl)
return {math.ceil(wait), tostring(rate), redis.call('ZCARD', KEYS[2]), math.ceil(now + wait)}
"""

# KEYS: bucket HASH.  ARGV: ceiling, floor rate, pause ms (Retry-After), window ms, burst.
# Returns the rate now.
_SLOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ceiling = tonumber(ARGV[1])
local rate = tonumber(redis.call('HGET', KEYS[1], 'rate') or ceiling)
local slowed = tonumber(redis.call('HGET', KEYS[1], 'slowed') or 0)
if now - slowed >= tonumber(ARGV[4]) then
  rate = math.max(tonumber(ARGV[2]), math.min(rate, ceiling) / 2)
  redis.call('HSET', KEYS[1], 'rate', rate, 'slowed', now)
end
local pause = tonumber(ARGV[3])
if pause > 0 then
  local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or now)
  local until_ = now + pause + (tonumber(ARGV[5]) - 1) * 1000 / rate
  if tat < until_ then redis.call('HSET', KEYS[1], 'tat', until_) end
end
redis.call('PEXPIRE', KEYS[1], 3600000)
return tostring(rate)
"""


class SharedRateLimiter:
    """One kind of API request (``meta`` or ``download``) paced across the fleet."""

    def __init__(
        self,
        redis: Redis,
        link: LimitsLink,
        keys: KeyIds,
        engine: str,
        kind: str,
        rate: float,
        burst: int = 3,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._redis = redis
        self._link = link
        self._keys = keys
        self.engine = engine
        self.kind = kind
        self.max_rate = rate
        self.burst = burst
        #: The shared rate as the server last said (halved after a 429/503).
        self.rate = rate
        #: Engines seen on this key (this one included) at the last answer: the N of 1/N.
        self.engines = 1
        #: When the last shared slot was given, by the server's clock (Unix ms; 0: none),
        #: and how long the server said to wait for it (s).
        self.last_slot = 0
        self.last_wait = 0.0
        self._take = redis.register_script(_TAKE)
        self._slow = redis.register_script(_SLOW)
        self._local = RateLimiter(rate, burst=1)
        self._pending: set[asyncio.Task[None]] = set()

    def _names(self, key: str) -> list[str]:
        base = f"ctf:limits:api:{{{key}}}:{self.kind}"
        return [base, base + ":engines"]

    def set_ceiling(self, rate: float) -> None:
        """A new top rate (``config set api.*``); the bucket follows on the next request."""
        self.max_rate = rate
        self.rate = min(self.rate, rate)
        self._local.set_ceiling(rate / self.engines)

    async def acquire(self) -> None:
        """Wait until the fleet allows one more request of this kind."""
        answer = await self._shared_take()
        if answer is None:  # the server is unreachable: this engine's share, locally
            await self._local.acquire()
            return
        wait_ms, rate, engines, slot = answer
        self.rate, self.last_slot, self.last_wait = float(rate), int(slot), wait_ms / 1000
        if engines != self.engines:
            self.engines = max(1, int(engines))
            self._local.set_ceiling(self.max_rate / self.engines)
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000)

    async def _shared_take(self) -> list[Any] | None:
        key = await self._keys.current()
        if key is None:
            return None
        args = [self.max_rate, self.burst, self.engine, RateLimiter.RECOVERY, MEMBER_TTL_MS]
        return await self._link.call(lambda: self._take(keys=self._names(key), args=args))

    def slow_down(self, retry_after: float | None = None) -> None:
        """A 429/503: halve the shared rate and hold every engine for ``retry_after``."""
        self._local.slow_down()
        task = asyncio.get_running_loop().create_task(self._shared_slow(retry_after))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _shared_slow(self, retry_after: float | None) -> None:
        key = await self._keys.current()
        if key is None:
            return
        pause = round(1000 * retry_after) if retry_after and retry_after > 0 else 0
        args = [self.max_rate, RateLimiter.MIN_RATE, pause, SLOW_WINDOW_MS, self.burst]
        rate = await self._link.call(lambda: self._slow(keys=self._names(key)[:1], args=args))
        if rate is not None:
            self.rate = float(rate)

    async def settle(self) -> None:
        """Wait for slow-downs still being sent (tests, shutdown)."""
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._pending)
