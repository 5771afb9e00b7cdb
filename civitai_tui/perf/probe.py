"""Per-host probing: does another connection add throughput? Keep it if so, back off if not.

One :class:`HostProbe` per storage host owns that host's connection budget
(connections across all of its files). It alternates two measurements: the rate
at the current budget (the baseline), then the rate after adding connections.
If the rate rose by at least ``min_gain`` of what linear scaling would give
(a server that caps each connection), the added connections stay and the next
probe follows; otherwise the budget returns to the baseline and the probe
waits (``hold``, doubling up to ``MAX_HOLD`` while probes keep failing) before
trying again. Growth starts multiplicative (slow start: x2, x4 after a probe
that scaled almost linearly) and becomes additive after the first failed probe.

AIMD on trouble: a 429/503 halves the budget and caps it below the count that
was throttled (for ``THROTTLE_MEMORY`` seconds); a burst of connection resets
cuts it by a quarter. Each change carries its reason, for the event bus.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

SETTLE_TICKS = 1  # ticks ignored after a change (new connections ramp up)
MEASURE_TICKS = 2  # ticks averaged into one measurement
FIRST_HOLD = 8.0
MAX_HOLD = 60.0
NEAR_LINEAR = 0.8
THROTTLE_MEMORY = 300.0
THROTTLE_DEBOUNCE = 2.0
MB = 1_000_000


class Phase(StrEnum):
    BASELINE = "baseline"  # measuring the rate at the current budget
    PROBING = "probing"  # measuring the rate after adding connections
    HOLD = "hold"  # the budget looks right; waiting before the next probe
    FIXED = "fixed"  # this mode does not probe


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


@dataclass
class _Window:
    ticks: int = 0
    nbytes: int = 0
    seconds: float = 0.0
    conn_sum: float = 0.0

    def add(self, nbytes: int, seconds: float, connections: int) -> None:
        self.ticks += 1
        self.nbytes += nbytes
        self.seconds += seconds
        self.conn_sum += connections

    def result(self, budget: int) -> Measurement:
        return Measurement(
            self.conn_sum / max(1, self.ticks), budget, self.nbytes / max(self.seconds, 1e-6)
        )


@dataclass
class HostProbe:
    """The connection budget of one host and the probe that moves it."""

    host: str
    budget: int
    ceiling: int
    min_gain: float
    probing: bool = True
    floor: int = 1
    phase: Phase = Phase.BASELINE
    throttle_cap: int | None = None
    throttled_at: float = -1e9
    throttles: int = 0
    resets: int = 0
    history: deque[Measurement] = field(default_factory=lambda: deque(maxlen=120))
    best: Measurement | None = None
    _base: Measurement | None = None
    _slow_start: bool = True
    _settle: int = SETTLE_TICKS
    _window: _Window = field(default_factory=_Window)
    _hold: float = FIRST_HOLD
    _hold_until: float = 0.0
    _grow_blocked: bool = False
    _near_linear: bool = False  # the last probe scaled almost linearly: step x4

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
        self._settle, self._window = SETTLE_TICKS, _Window()
        return Step(old, new, reason)

    def reconfigure(
        self, ceiling: int, start: int, min_gain: float, probing: bool, now: float
    ) -> Step | None:
        """A new mode: new limits, at least its start budget, and the probe starts over."""
        self.ceiling, self.min_gain, self.probing = ceiling, min_gain, probing
        self.phase = Phase.BASELINE if probing else Phase.FIXED
        self._slow_start, self._base, self._hold = True, None, FIRST_HOLD
        reason = f"the new mode starts at {start} and allows at most {self.limit(now)}"
        return self._set(max(self.budget, start), reason, now)

    # ----------------------------------------------------------- observing
    def tick(self, nbytes: int, seconds: float, connections: int, now: float) -> Step | None:
        """One probe tick: ``nbytes`` moved in ``seconds`` over ``connections`` open ones."""
        if connections == 0:
            return None  # nothing to learn from an idle host
        if self._settle > 0:
            self._settle -= 1
            return None
        self._window.add(nbytes, seconds, connections)
        if self._window.ticks < MEASURE_TICKS:
            return None
        measured = self._window.result(self.budget)
        self._window = _Window()
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
            self._base = measured
            return self._grow(now)
        return self._judge(measured, now)

    def _grow(self, now: float) -> Step | None:
        base = self._base
        assert base is not None
        if self._grow_blocked or self.budget >= self.limit(now):
            self._hold_for(now)
            return None
        if base.connections < self.budget * 0.75:
            self._hold_for(now)  # the files cannot use the budget they have (too few ranges)
            return None
        if self._slow_start:
            target = self.budget * (4 if self._near_linear else 2)
        else:
            target = self.budget + max(1, self.budget // 4)
        self.phase = Phase.PROBING
        step = self._set(
            target,
            f"probing: does more than {self.budget} connections add throughput "
            f"(now {base.rate / MB:.1f} MB/s)?",
            now,
        )
        if step is None:
            self._hold_for(now)
        return step

    def _judge(self, measured: Measurement, now: float) -> Step | None:
        base = self._base
        assert base is not None
        added = measured.connections / max(base.connections, 1e-6) - 1
        linear_gain = base.rate * added
        gain = measured.rate - base.rate
        if added > 0.05 and linear_gain > 0 and gain >= self.min_gain * linear_gain:
            self._near_linear = gain >= NEAR_LINEAR * linear_gain
            self._hold = FIRST_HOLD
            self._base = measured
            self.phase = Phase.BASELINE
            return self._grow(now)
        self._slow_start = False
        self._hold_for(now, longer=True)
        why = (
            f"{measured.connections:.0f} connections gave {measured.rate / MB:.1f} MB/s vs "
            f"{base.rate / MB:.1f} MB/s with {base.connections:.0f}: no gain worth keeping"
        )
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
        self._slow_start = False
        self._hold_for(now, longer=True)
        return self._set(
            max(self.floor, self.budget // 2),
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
