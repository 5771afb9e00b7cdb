"""Work stealing and progress bookkeeping of RangeSet (pure)."""

from __future__ import annotations

import pytest

from civitai_tui.download.ranges import RangeSet, merge_spans, worth_stealing

MiB = 1 << 20


def test_small_file_uses_one_connection() -> None:
    ranges = RangeSet(5 * MiB, min_split=4 * MiB)
    first = ranges.next_range(1)
    assert first is not None and (first.start, first.end) == (0, 5 * MiB)
    assert ranges.next_range(2) is None


def test_steal_takes_second_half_of_largest_busy_range() -> None:
    ranges = RangeSet(64 * MiB, min_split=1 * MiB)
    a = ranges.next_range(1)
    assert a is not None
    ranges.advance(a, 8 * MiB)
    b = ranges.next_range(2)
    assert b is not None
    assert (b.start, b.end) == (36 * MiB, 64 * MiB)  # middle of the 56 MiB still missing
    assert a.end == 36 * MiB  # the first connection now stops at the midpoint
    ranges.advance(b, 2 * MiB)  # now a has more left (28 MiB) than b (26 MiB)
    c = ranges.next_range(3)
    assert c is not None and (c.start, c.end) == (22 * MiB, 36 * MiB)
    assert a.end == 22 * MiB and b.end == 64 * MiB


def test_never_splits_below_min_split() -> None:
    ranges = RangeSet(10 * MiB, min_split=4 * MiB)
    a = ranges.next_range(1)
    assert a is not None
    b = ranges.next_range(2)
    assert b is not None and b.remaining >= 4 * MiB and a.remaining >= 4 * MiB
    assert ranges.next_range(3) is None


def test_a_steal_needs_the_least_the_caller_asks_for() -> None:
    ranges = RangeSet(64 * MiB, min_split=1 * MiB)
    a = ranges.next_range(1)
    assert a is not None
    ranges.advance(a, 40 * MiB)  # 24 MiB left: worth halving on a quick host ...
    assert ranges.next_range(2, least=32 * MiB) is None  # ... not where a first byte is slow
    assert a.end == 64 * MiB  # the owner keeps its whole range
    b = ranges.next_range(2, least=16 * MiB)
    assert b is not None and (b.start, b.end) == (52 * MiB, 64 * MiB)


def test_stealing_pays_only_beyond_a_first_byte_worth_of_bytes() -> None:
    assert worth_stealing(20e6, 0.001) < MiB  # loopback: min_split decides
    assert worth_stealing(20e6, 0.2) == 16_000_000  # 200 ms to a first byte at 20 MB/s
    assert worth_stealing(0.0, 0.2) == 0  # nothing measured yet


def test_free_segments_come_before_stealing() -> None:
    ranges = RangeSet(32 * MiB, min_split=1 * MiB)
    ranges.split_free(4)
    starts = sorted(s.start for s in (ranges.next_range(i) for i in range(4)) if s)
    assert starts == [0, 8 * MiB, 16 * MiB, 24 * MiB]
    assert ranges.owners == 4


def test_release_returns_the_rest_to_the_pool() -> None:
    ranges = RangeSet(16 * MiB, min_split=1 * MiB)
    a = ranges.next_range(1)
    assert a is not None
    ranges.advance(a, 3 * MiB)
    ranges.release(a)
    again = ranges.next_range(2)
    assert again is a and again.pos == 3 * MiB and again.owner == 2


def test_progress_spans_prefix_and_completion() -> None:
    ranges = RangeSet(8 * MiB, min_split=1 * MiB)
    ranges.split_free(2)
    a, b = ranges.next_range(1), ranges.next_range(2)
    assert a is not None and b is not None
    ranges.advance(b, 1 * MiB)
    assert ranges.contiguous_prefix() == 0
    assert ranges.finished_spans() == [(4 * MiB, 5 * MiB)]
    ranges.advance(a, 4 * MiB)
    assert ranges.contiguous_prefix() == 5 * MiB
    assert ranges.finished_spans() == [(0, 5 * MiB)]
    ranges.advance(b, 3 * MiB)
    assert ranges.complete and ranges.done_bytes == 8 * MiB
    with pytest.raises(ValueError):
        ranges.advance(b, 1)


def test_resume_from_done_spans() -> None:
    ranges = RangeSet(10 * MiB, min_split=1 * MiB, done=[(0, 2 * MiB), (6 * MiB, 7 * MiB)])
    assert ranges.done_bytes == 3 * MiB
    assert ranges.first_missing() == (2 * MiB, 6 * MiB)
    got = ranges.next_range(1)
    assert got is not None and (got.start, got.end) == (2 * MiB, 6 * MiB)


def test_claim_splits_off_the_rest() -> None:
    ranges = RangeSet(20 * MiB, min_split=1 * MiB)
    first = ranges.claim(0, 4 * MiB, owner=1)
    assert (first.start, first.end) == (0, 4 * MiB)
    assert ranges.first_missing() == (4 * MiB, 20 * MiB)
    with pytest.raises(ValueError):
        ranges.claim(4 * MiB + 1, 5 * MiB, owner=2)


def test_merge_spans() -> None:
    assert merge_spans([(5, 9), (0, 2), (2, 4), (8, 12), (3, 3)]) == [(0, 4), (5, 12)]
