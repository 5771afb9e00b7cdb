"""Per-host probing: does another connection add throughput, does one fewer cost any?

One :class:`HostProbe` per storage host owns that host's connection budget
(connections across all of its files). From a baseline measurement it probes in
one direction and judges the result against linear scaling:

* **up** (more connections): kept when the rate rose by at least ``min_gain`` of
  what linear scaling would give (a server that caps each connection);
* **down** (fewer connections, modes with ``shed_probe``): kept when the rate
  fell by at most ``min_gain`` of what linear scaling would lose (a link, or a
  CPU, that more connections only crowd).

A kept probe becomes the new baseline and the probe goes on in the same
direction. A big step up that raised the rate, but too little per connection
(it overshot a total cap), is halved geometrically and judged again. A failed
probe tries the other direction once from the same baseline,
then the budget returns to the baseline and the probe waits (``hold``, doubling
up to ``MAX_HOLD`` while probes keep failing). Steps start multiplicative (slow
start) and become additive after the first failed probe. The very first
decision on a host reads the rate per connection: slow connections (under
``SLOW_CONNECTION``, the mark of a per-connection cap) jump ``COLD_JUMP`` times
up at once; fast ones (a host that does not cap) probe down first. That first
baseline is the first tick with bytes, not ``MEASURE_TICKS`` after a settle: a
file that finishes in seconds should run most of them at the right budget.

Files: on a host whose connections are capped (the cold jump saw slow
connections, or a probe up scaled almost linearly) more files are a reason for
more connections, as aria2c's ``-x`` is per file: when files join, the budget
grows with them (same connections per file), up to the host's limit.

Connection limits: a burst of refusals (429/503, or connections closed before
any answer) is watched for ``BURST_WINDOW`` seconds; the connections still
moving bytes after it are what the server allows. That count becomes the
host's learned limit (a ceiling the budget sits at, never probes past) unless
the burst leaves a gap (connections neither served nor refused): then the limit
lies between the two and is bisected, one measurement per step, with no long
holds. A burst once the limit is known is a regression: the limit is learned
again, lower. A burst of resets mid-body cuts the budget by a quarter. Each
change carries its reason, for the event bus.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from civitai_tui.units import human_bytes

SETTLE_TICKS = 2  # ticks ignored after a change (new connections ramp up)
MEASURE_TICKS = 3  # ticks averaged into one measurement
FIRST_HOLD = 8.0
MAX_HOLD = 60.0
NEAR_LINEAR = 0.8
MB = 1_000_000
#: A rate per connection below this (bytes/s) looks like a per-connection cap.
SLOW_CONNECTION = 32 * MB
#: The first step up on a host whose connections look capped (1 -> 16 at ADAPTIVE's start).
COLD_JUMP = 16
#: Seconds a burst of refusals is watched before the connections still moving bytes are
#: read as the server's limit (refused connections wait out Retry-After, at least ~0.5 s).
BURST_WINDOW = 0.4


class Phase(StrEnum):
    BASELINE = "baseline"  # measuring the rate at the current budget
    PROBING = "probing"  # measuring the rate after a change of the budget
    HOLD = "hold"  # the budget looks right; waiting before the next probe
    FIXED = "fixed"  # this mode does not probe
    BURST = "burst"  # refusals came: counting what the server still serves
    BISECT = "bisect"  # the connection limit lies in a range: halving it


class Direction(IntEnum):
    DOWN = -1
    UP = 1


@dataclass(frozen=True)
class Step:
    """A change of a host's budget, with its reason."""

    old: int
    new: int
    reason: str


@dataclass(frozen=True)
class Measurement:
    connections: float  # connections serving (with an answer), averaged over the measurement
    budget: int
    rate: float  # bytes/s
    #: Connections in use: serving, or asking no longer than a request takes (None: same).
    usable: float | None = None

    @property
    def in_use(self) -> float:
        return self.connections if self.usable is None else self.usable


def _open(base: Measurement) -> int:
    """Where a step starts: the budget, or the connections open if more (one per file at least)."""
    return max(base.budget, round(base.connections))


@dataclass
class _Window:
    ticks: int = 0
    rate_sum: float = 0.0
    conn_sum: float = 0.0
    usable_sum: float = 0.0

    def add(self, rate: float, connections: int, usable: int) -> None:
        self.ticks += 1
        self.rate_sum += rate
        self.conn_sum += connections
        self.usable_sum += usable

    def result(self, budget: int) -> Measurement:
        ticks = max(1, self.ticks)
        return Measurement(
            self.conn_sum / ticks, budget, self.rate_sum / ticks, self.usable_sum / ticks
        )


@dataclass
class _Burst:
    """A burst of refusals being watched: when it began, at what budget, how many."""

    started: float
    budget: int
    open: int
    refused: int = 0
    what: str = ""
    #: The most connections seen moving bytes during the burst (the server served them).
    served: int = 0
    #: The budget before the step that provoked it (a bisection step), if any.
    safe: int | None = None


@dataclass
class HostProbe:
    """The connection budget of one host and the probe that moves it."""

    host: str
    budget: int
    ceiling: int
    min_gain: float
    probing: bool = True
    shed_probe: bool = True
    floor: int = 1
    #: Probing down keeps fewer connections at this share of the best rate (None: linear).
    keep_share: float | None = None
    #: Ticks to ignore after a change (the optimizer raises it on slow first bytes).
    settle_ticks: int = SETTLE_TICKS
    #: No decision taken on this host yet (a budget learned on an earlier run is not cold).
    cold: bool = True
    phase: Phase = Phase.BASELINE
    #: Files downloading from this host now (the optimizer keeps it current).
    files: int = 1
    #: Each connection looks capped: more files get more connections.
    capped: bool = False
    #: The most connections the server allows (learned from a burst of refusals).
    conn_limit: int | None = None
    limit_why: str = ""
    #: Bytes/s this host may use under the speed limits (0: none); no probing past it.
    rate_cap: float = 0.0
    throttles: int = 0
    bursts: int = 0
    resets: int = 0
    history: deque[Measurement] = field(default_factory=lambda: deque(maxlen=120))
    best: Measurement | None = None
    _base: Measurement | None = None
    _direction: Direction = Direction.UP
    _tried: set[Direction] = field(default_factory=set)
    _slow_start: bool = True
    #: A new host needs no settling: ticks before its first bytes carry no rate and are skipped.
    _settle: int = 0
    _window: _Window = field(default_factory=_Window)
    _hold: float = FIRST_HOLD
    _hold_until: float = 0.0
    _grow_blocked: bool = False
    _near_linear: bool = False  # the last probe up scaled almost linearly: step x4
    _burst: _Burst | None = None
    _bisect: tuple[int, int] | None = None  # (served, most possible) bounds of the limit
    _why: str = ""  # what the last burst showed

    def __post_init__(self) -> None:
        self.budget = self._clamp(self.budget)
        if not self.probing:
            self.phase = Phase.FIXED

    # ------------------------------------------------------------- limits
    def limit(self, now: float = 0.0) -> int:
        """The most connections allowed now (mode ceiling, learned connection limit)."""
        cap = self.ceiling
        if self.conn_limit is not None:
            cap = min(cap, self.conn_limit)
        if self._bisect is not None:
            cap = min(cap, self._bisect[1])
        return max(self.floor, cap)

    def _clamp(self, value: int, now: float = 0.0) -> int:
        return max(self.floor, min(value, self.limit(now)))

    def _set(self, new: int, reason: str, now: float) -> Step | None:
        new = self._clamp(new, now)
        if new == self.budget:
            return None
        old, self.budget = self.budget, new
        self._settle, self._window = self.settle_ticks, _Window()
        return Step(old, new, reason)

    def reconfigure(
        self,
        ceiling: int,
        start: int,
        min_gain: float,
        probing: bool,
        now: float,
        shed_probe: bool = True,
    ) -> Step | None:
        """A new mode: new limits, at least its start budget, and the probe starts over."""
        self.ceiling, self.min_gain = ceiling, min_gain
        self.probing, self.shed_probe = probing, shed_probe
        self.phase = Phase.BASELINE if probing else Phase.FIXED
        self._slow_start, self.cold, self._base, self._hold = True, True, None, FIRST_HOLD
        reason = f"the new mode starts at {start} and allows at most {self.limit(now)}"
        return self._set(max(self.budget, start), reason, now)

    @property
    def settled_budget(self) -> int:
        """The budget last judged good: the current one, or a probe's baseline while it runs."""
        if self.phase is Phase.PROBING and self._base is not None:
            return self._base.budget
        return self.budget

    # ----------------------------------------------------------- observing
    def tick(
        self, rate: float, connections: int, now: float, usable: int | None = None
    ) -> Step | None:
        """One probe tick: the host moved ``rate`` bytes/s over ``connections`` serving ones
        (with an answer); ``usable``: those plus the ones asking no longer than a request
        takes (default: ``connections``)."""
        if self._burst is not None:
            self._burst.served = max(self._burst.served, connections)
            if now - self._burst.started < BURST_WINDOW:
                return None
            return self._burst_over(self._burst.served, now)
        if connections == 0:
            return None  # nothing to learn from an idle host
        if self._settle > 0:
            self._settle -= 1
            return None
        self._window.add(rate, connections, connections if usable is None else usable)
        if self._window.ticks < (1 if self.cold else MEASURE_TICKS):  # decide early on a new host
            return None
        measured = self._window.result(self.budget)
        self._window = _Window()
        if measured.rate <= 0:
            return None  # no bytes yet (first bytes pending, a stall): nothing to judge by
        self.history.append(measured)
        if self.best is None or measured.rate > self.best.rate:
            self.best = measured
        return self._decide(measured, now)

    def _decide(self, measured: Measurement, now: float) -> Step | None:
        if self.phase is Phase.FIXED:
            return None
        if self.phase is Phase.BISECT:
            return self._bisect_step(now)
        if self.phase is Phase.HOLD:
            if now < self._hold_until:
                return None
            self.phase = Phase.BASELINE
        if self.phase is Phase.BASELINE:
            return self._explore(measured, now)
        return self._judge(measured, now)

    def _explore(self, base: Measurement, now: float) -> Step | None:
        """A fresh baseline: probe in the likelier direction, else the other one."""
        self._base, self._tried = base, set()
        fast = base.rate / max(base.connections, 1) >= SLOW_CONNECTION
        first = Direction.DOWN if self.cold and self.shed_probe and fast else Direction.UP
        step = self._probe(first, now) or self._probe(Direction(-first), now)
        self.cold = False
        if step is None:
            self._hold_for(now)
        return step

    def _probe(self, direction: Direction, now: float) -> Step | None:
        """Move the budget one step in ``direction`` from the baseline, if that is possible."""
        base = self._base
        assert base is not None
        self._tried.add(direction)
        start = _open(base)
        if direction is Direction.UP:
            if self._grow_blocked or base.budget >= self.limit(now):
                return None
            if base.in_use < base.budget * 0.75:
                return None  # the files cannot use the budget they have (too few ranges)
            if self.rate_cap and base.rate >= 0.9 * self.rate_cap:
                return None  # the speed limit, not the connections, sets the rate
            best = self.best
            if (
                self.keep_share
                and best
                and best.connections > base.connections
                and base.rate >= self.keep_share * best.rate
            ):
                return None  # more connections reached little more: not worth them
            if self._slow_start:
                target = start * self._up_factor(base)
            else:
                target = start + max(1, start // 4)
            question = f"does more than {base.budget} connections add throughput"
        else:
            if not self.shed_probe or base.budget <= self.floor:
                return None
            target = start - (start // 2 if self._slow_start else max(1, start // 4))
            question = f"do fewer than {base.budget} connections keep the throughput"
        self.phase, self._direction = Phase.PROBING, direction
        return self._set(target, f"probing: {question} (now {human_bytes(base.rate)}/s)?", now)

    def _up_factor(self, base: Measurement) -> int:
        if self.cold and base.rate / max(base.connections, 1) < SLOW_CONNECTION:
            self.capped = True
            return COLD_JUMP
        return 4 if self._near_linear else 2

    def _judge(self, measured: Measurement, now: float) -> Step | None:
        base = self._base
        assert base is not None
        change = measured.connections / max(base.connections, 1e-6) - 1
        linear = base.rate * abs(change)
        if self._direction is Direction.UP:
            gain = measured.rate - base.rate
            kept = change > 0.05 and linear > 0 and gain >= self.min_gain * linear
            self._near_linear = kept and gain >= NEAR_LINEAR * linear
            self.capped = self._near_linear or (self.capped and kept)
        else:
            loss = base.rate - measured.rate
            if self.keep_share is not None and self.best is not None:
                kept = change < -0.05 and measured.rate >= self.keep_share * self.best.rate
            else:
                kept = change < -0.05 and loss <= self.min_gain * linear
        if kept:
            self._hold = FIRST_HOLD
            self._base, self._tried = measured, {self._direction}
            self.phase = Phase.BASELINE
            step = self._probe(self._direction, now)
            if step is None:
                self._hold_for(now)
            return step
        self._slow_start = False
        why = (
            f"{measured.connections:.0f} connections gave {human_bytes(measured.rate)}/s vs "
            f"{human_bytes(base.rate)}/s with {base.connections:.0f}: "
            + ("no gain worth keeping" if self._direction is Direction.UP else "too much lost")
        )
        midpoint = round(math.sqrt(base.budget * self.budget))
        rose = measured.rate - base.rate >= self.min_gain * base.rate
        if self._direction is Direction.UP and rose and base.budget < midpoint < self.budget:
            # A big step that overshot a total cap: the optimum lies in between.
            return self._set(midpoint, f"{why}, but the rate rose: trying {midpoint}", now)
        other = Direction(-self._direction)
        if other not in self._tried:
            budget = self.budget
            step = self._probe(other, now)
            if step is not None:
                return Step(budget, step.new, f"{why}; {step.reason}")
        self._hold_for(now, longer=True)
        return self._set(base.budget, why, now)

    def _hold_for(self, now: float, longer: bool = False) -> None:
        self.phase = Phase.HOLD if self.probing else Phase.FIXED
        self._hold_until = now + self._hold
        if longer:
            self._hold = min(MAX_HOLD, self._hold * 2)

    # ------------------------------------------------------------- files
    def files_changed(self, files: int, now: float) -> Step | None:
        """``files`` now download from this host: on capped connections, scale the budget."""
        old, self.files = self.files, max(1, files)
        if not (self.capped and self.probing) or self.files <= old or self._burst is not None:
            return None
        per_file = max(1, -(-self.budget // old))
        return self._set(
            per_file * self.files,
            f"each connection is capped: {per_file} connections for each of {self.files} files",
            now,
        )

    # ------------------------------------------------------------- trouble
    def refused(self, what: str, open_now: int, now: float) -> None:
        """A request refused (``what``: "HTTP 503", ...): start or count a burst."""
        self.throttles += 1
        if not self.probing:
            return
        if self._burst is None:
            safe = self._bisect[0] if self.phase is Phase.BISECT and self._bisect else None
            self._burst = _Burst(now, self.budget, max(open_now, 1), what=what, safe=safe)
            self.phase = Phase.BURST
        self._burst.refused += 1

    def _burst_over(self, served: int, now: float) -> Step | None:
        """The burst is over: at most ``served`` connections moved bytes at once; learn the
        limit (the most seen, not the last count: connections over the limit, cut by the
        refusals, stop at their next segment whatever the server allows)."""
        burst, self._burst = self._burst, None
        assert burst is not None
        self._slow_start = self.cold = False
        self._settle, self._window = self.settle_ticks, _Window()
        refused_at = max(burst.budget, burst.open)
        if burst.safe is not None and self._bisect is not None:  # a bisection step overshot
            lo, hi = burst.safe, max(burst.safe, burst.budget - 1)
        else:
            self.bursts += 1
            lo = max(self.floor, min(served, refused_at - 1))
            exact = served + burst.refused >= burst.open  # every connection served or refused
            hi = lo if exact else max(lo, refused_at - 1)
            again = " again (the limit fell)" if self.conn_limit is not None else ""
            self._why = f"{burst.what}{again} with {refused_at} connections, {served} served"
        self.conn_limit = hi
        if lo >= hi:
            self._bisect, self.limit_why = None, f"{self._why}: limit {lo}"
            self._hold_for(now)
            return self._force(lo, f"{self._why}: the server allows {lo} connections", now)
        self._bisect, self.phase = (lo, hi), Phase.BISECT
        self.limit_why = f"{self._why}: limit between {lo} and {hi}"
        return self._force(lo, f"{self.limit_why}, bisecting", now)

    def _bisect_step(self, now: float) -> Step | None:
        """A measurement passed without refusals: it is served; halve what is left."""
        assert self._bisect is not None
        lo, hi = max(self._bisect[0], self.budget), self._bisect[1]
        if lo >= hi:
            self._bisect, self.conn_limit = None, lo
            self.limit_why = f"{self._why}: limit {lo} (bisected)"
            self._hold_for(now)
            return None
        self._bisect = (lo, hi)
        mid = (lo + hi + 1) // 2
        return self._set(mid, f"bisecting the connection limit: {lo} served, trying {mid}", now)

    def _force(self, new: int, reason: str, now: float) -> Step | None:
        """``_set``, but a step also when the value stays (the downloader must hear it)."""
        return self._set(new, reason, now) or Step(self.budget, self.budget, reason)

    def connection_errors(self, count: int, now: float) -> Step | None:
        """``count`` resets/stalls mid-body since the last tick: a burst cuts a quarter."""
        self.resets += count
        if count < max(2, self.budget // 2) or self._burst is not None:
            return None
        self._hold_for(now, longer=True)
        return self._set(
            self.budget * 3 // 4,
            f"{count} connections reset or stalled at once: fewer connections",
            now,
        )

    def system(self, shed: bool, grow: bool, reason: str, now: float) -> Step | None:
        """The seed table's verdict: shed one, or (modes without probing) add one."""
        self._grow_blocked = shed
        if shed:
            return self._set(self.budget - 1, f"{reason}: one fewer connection", now)
        if grow and not self.probing:
            return self._set(self.budget + 1, f"{reason}: one more connection", now)
        return None
