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

AIMD on trouble: a 429/503 halves the budget (or, during a probe up, returns
to the baseline, whichever is lower) and caps it below the count that was
throttled (for ``THROTTLE_MEMORY`` seconds); a burst of connection resets cuts
it by a quarter. Each change carries its reason, for the event bus.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

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
THROTTLE_MEMORY = 300.0
THROTTLE_DEBOUNCE = 2.0


class Phase(StrEnum):
    BASELINE = "baseline"  # measuring the rate at the current budget
    PROBING = "probing"  # measuring the rate after a change of the budget
    HOLD = "hold"  # the budget looks right; waiting before the next probe
    FIXED = "fixed"  # this mode does not probe


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
    connections: float  # connections actually open, averaged over the measurement
    budget: int
    rate: float  # bytes/s


def _open(base: Measurement) -> int:
    """Where a step starts: the budget, or the connections open if more (one per file at least)."""
    return max(base.budget, round(base.connections))


@dataclass
class _Window:
    ticks: int = 0
    rate_sum: float = 0.0
    conn_sum: float = 0.0

    def add(self, rate: float, connections: int) -> None:
        self.ticks += 1
        self.rate_sum += rate
        self.conn_sum += connections

    def result(self, budget: int) -> Measurement:
        ticks = max(1, self.ticks)
        return Measurement(self.conn_sum / ticks, budget, self.rate_sum / ticks)


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
    #: Ticks to ignore after a change (the optimizer raises it on slow first bytes).
    settle_ticks: int = SETTLE_TICKS
    #: No decision taken on this host yet (a budget learned on an earlier run is not cold).
    cold: bool = True
    phase: Phase = Phase.BASELINE
    throttle_cap: int | None = None
    throttled_at: float = -1e9
    throttles: int = 0
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

    def __post_init__(self) -> None:
        self.budget = self._clamp(self.budget)
        if not self.probing:
            self.phase = Phase.FIXED

    # ------------------------------------------------------------- limits
    def limit(self, now: float) -> int:
        """The most connections allowed now (mode ceiling, throttle memory)."""
        cap = self.ceiling
        if self.throttle_cap is not None:
            if now - self.throttled_at < THROTTLE_MEMORY:
                cap = min(cap, self.throttle_cap)
            else:
                self.throttle_cap = None
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
    def tick(self, rate: float, connections: int, now: float) -> Step | None:
        """One probe tick: the host moved ``rate`` bytes/s over ``connections`` open ones."""
        if connections == 0:
            return None  # nothing to learn from an idle host
        if self._settle > 0:
            self._settle -= 1
            return None
        self._window.add(rate, connections)
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
            if base.connections < base.budget * 0.75:
                return None  # the files cannot use the budget they have (too few ranges)
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
        return self._set(target, f"probing: {question} (now {base.rate / MB:.1f} MB/s)?", now)

    def _up_factor(self, base: Measurement) -> int:
        if self.cold and base.rate / max(base.connections, 1) < SLOW_CONNECTION:
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
        else:
            loss = base.rate - measured.rate
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
            f"{measured.connections:.0f} connections gave {measured.rate / MB:.1f} MB/s vs "
            f"{base.rate / MB:.1f} MB/s with {base.connections:.0f}: "
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

    # ------------------------------------------------------------- trouble
    def throttled(self, status: int, now: float) -> Step | None:
        """A 429/503 from this host: multiplicative decrease, remember the ceiling."""
        self.throttles += 1
        if now - self.throttled_at < THROTTLE_DEBOUNCE:
            return None
        self.throttled_at = now
        self.throttle_cap = max(self.floor, self.budget - 1)
        target = self.budget // 2
        if self.phase is Phase.PROBING and self._direction is Direction.UP and self._base:
            target = min(target, self._base.budget)  # the probe provoked it: undo the probe
        self._slow_start = self.cold = False
        self._hold_for(now, longer=True)
        return self._set(
            max(self.floor, target),
            f"HTTP {status} with {self.budget} connections: halving, at most "
            f"{self.throttle_cap} for {THROTTLE_MEMORY / 60:.0f} min",
            now,
        )

    def connection_errors(self, count: int, now: float) -> Step | None:
        """``count`` resets/stalls since the last tick: a burst cuts the budget by a quarter."""
        self.resets += count
        if count < max(2, self.budget // 2):
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
