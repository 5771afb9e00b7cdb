"""Batch processing: how many files run at once, and how ADAPTIVE sizes its batches.

A batch is up to ``batch_size`` files of one job downloaded together; the next
batch in that slot starts when the whole batch is done, after
``pause_between_batches`` seconds.

* SEQUENTIAL: one batch at a time.
* PARALLEL: ``concurrent_batches`` batches at a time.
* ADAPTIVE: like PARALLEL, but each slot sizes its next batch from the last one:
  halve on an error rate above 20 %, grow by one while throughput keeps up
  (within 5 %), shrink by one when growing made it slower. Bounds: 1 to
  4 x ``batch_size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from civitai_tui.binding import bound


class BatchStrategy(StrEnum):
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"
    ADAPTIVE = "adaptive"


@dataclass
class BatchConfig:
    """The batch knobs; changeable while the manager runs."""

    batch_size: int = bound("bulk.batch_size", 5)
    concurrent_batches: int = bound("bulk.concurrent_batches", 2)
    strategy: BatchStrategy = bound("bulk.strategy", BatchStrategy.ADAPTIVE, read=BatchStrategy)
    pause_between_batches: float = bound("bulk.pause_between_batches", 0.0)

    @property
    def slots(self) -> int:
        """How many batches may run at once."""
        return 1 if self.strategy is BatchStrategy.SEQUENTIAL else self.concurrent_batches


@dataclass(frozen=True)
class BatchOutcome:
    """What one finished batch measured."""

    files: int
    failed: int
    bytes: int
    seconds: float

    @property
    def throughput(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.failed / self.files if self.files else 0.0


class AdaptiveSizer:
    """The ADAPTIVE rule, one instance per batch slot."""

    ERROR_RATE_LIMIT = 0.2
    TOLERANCE = 0.95

    def __init__(self, config: BatchConfig) -> None:
        self._config = config
        self.size = config.batch_size
        self._last: BatchOutcome | None = None
        self._grew = False

    def next_size(self) -> int:
        """The size of this slot's next batch."""
        if self._config.strategy is not BatchStrategy.ADAPTIVE:
            return self._config.batch_size
        return max(1, min(self.size, 4 * self._config.batch_size))

    def record(self, outcome: BatchOutcome) -> int:
        """Learn from a finished batch; returns the new size."""
        if self._config.strategy is not BatchStrategy.ADAPTIVE:
            self.size = self._config.batch_size
            return self.size
        last, self._last = self._last, outcome
        if outcome.error_rate > self.ERROR_RATE_LIMIT:
            self.size, self._grew = max(1, self.size // 2), False
        elif (
            last is not None
            and self._grew
            and outcome.throughput < last.throughput * self.TOLERANCE
        ):
            self.size, self._grew = max(1, self.size - 1), False
        else:
            self.size, self._grew = self.size + 1, True
        self.size = min(self.size, 4 * self._config.batch_size)
        return self.size
