"""Batch strategies and the ADAPTIVE sizing rule."""

from __future__ import annotations

from civitai_tui.bulk.batches import AdaptiveSizer, BatchConfig, BatchOutcome, BatchStrategy


def outcome(throughput: float, failed: int = 0, files: int = 5) -> BatchOutcome:
    return BatchOutcome(files=files, failed=failed, bytes=int(throughput * 10), seconds=10)


def test_slots_per_strategy() -> None:
    assert BatchConfig(strategy=BatchStrategy.SEQUENTIAL, concurrent_batches=4).slots == 1
    assert BatchConfig(strategy=BatchStrategy.PARALLEL, concurrent_batches=4).slots == 4
    assert BatchConfig(strategy=BatchStrategy.ADAPTIVE, concurrent_batches=3).slots == 3


def test_fixed_strategies_keep_the_configured_size_even_when_changed_live() -> None:
    config = BatchConfig(batch_size=4, strategy=BatchStrategy.PARALLEL)
    sizer = AdaptiveSizer(config)
    assert sizer.record(outcome(100, failed=5)) == 4
    config.batch_size = 7
    assert sizer.next_size() == 7


def test_adaptive_grows_while_throughput_keeps_up_and_backs_off() -> None:
    config = BatchConfig(batch_size=2, strategy=BatchStrategy.ADAPTIVE)
    sizer = AdaptiveSizer(config)
    assert sizer.record(outcome(100)) == 3  # first batch: probe upwards
    assert sizer.record(outcome(150)) == 4  # faster: keep growing
    assert sizer.record(outcome(100)) == 3  # growing made it slower: step back
    assert sizer.record(outcome(100, failed=2)) == 1  # 40 % errors: halve
    for _ in range(20):
        sizer.record(outcome(1000))
    assert sizer.next_size() == 8  # bounded at 4 x batch_size


def test_outcome_rates() -> None:
    o = BatchOutcome(files=4, failed=1, bytes=400, seconds=2)
    assert o.throughput == 200 and o.error_rate == 0.25
    assert BatchOutcome(files=0, failed=0, bytes=0, seconds=0).throughput == 0
