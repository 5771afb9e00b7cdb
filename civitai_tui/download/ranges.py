"""Which bytes of a file are done, being fetched, or still free: segments with work stealing.

A file is covered by disjoint :class:`Segment` objects. Each has a write cursor
``pos``: ``[start, pos)`` is on disk, ``[pos, end)`` is still missing. A segment
is either owned by one connection (which streams into it) or free. A connection
looking for work (``next_range``) takes the largest free segment; when none is
left it steals the second half of the largest segment another connection is
still fetching (aria2 ``getSparseMissingUnusedIndex`` / axel), shrinking that
segment's ``end`` so its owner stops at the midpoint. Nothing is split below
``min_split``, so a small file uses one connection, and the caller may ask for a
larger least size to steal from (a split only pays when the rest of a range takes
longer than a new request's first byte). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise


def worth_stealing(rate: float, ttfb: float) -> int:
    """The least bytes a busy range must have left for halving it to pay.

    Halving ``R`` bytes on connections of ``rate`` B/s finishes them after
    ``ttfb + R / 2 rate`` instead of ``R / rate``: a gain only when
    ``R > 2 rate ttfb``. Twice that leaves room for a new connection's handshake.
    """
    return int(4 * rate * ttfb)


@dataclass(eq=False)
class Segment:
    """A byte range ``[start, end)`` whose bytes ``[start, pos)`` are written."""

    start: int
    end: int
    pos: int
    owner: int | None = None

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    @property
    def finished(self) -> bool:
        return self.pos >= self.end


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-empty, non-overlapping ``[start, end)`` spans, adjacent ones joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class RangeSet:
    """The segments of one file of ``size`` bytes, some of them already ``done``."""

    def __init__(self, size: int, min_split: int, done: Iterable[tuple[int, int]] = ()) -> None:
        if size < 0 or min_split < 1:
            raise ValueError("size must be >= 0 and min_split >= 1")
        self.size = size
        self.min_split = min_split
        self._segments: list[Segment] = []
        cursor = 0
        for start, end in merge_spans((max(0, s), min(size, e)) for s, e in done):
            if start > cursor:
                self._segments.append(Segment(cursor, start, cursor))
            self._segments.append(Segment(start, end, end))
            cursor = end
        if cursor < size:
            self._segments.append(Segment(cursor, size, cursor))

    @property
    def done_bytes(self) -> int:
        return sum(s.pos - s.start for s in self._segments)

    @property
    def complete(self) -> bool:
        return all(s.finished for s in self._segments)

    @property
    def owners(self) -> int:
        """How many connections are fetching a segment now."""
        return sum(1 for s in self._segments if s.owner is not None and not s.finished)

    def contiguous_prefix(self) -> int:
        """The first byte not yet written: everything before it is on disk."""
        return min((s.pos for s in self._segments if not s.finished), default=self.size)

    def first_missing(self) -> tuple[int, int] | None:
        """``(pos, end)`` of the first free, unfinished segment (where a resume starts)."""
        for seg in self._segments:
            if seg.owner is None and not seg.finished:
                return seg.pos, seg.end
        return None

    def finished_spans(self) -> list[tuple[int, int]]:
        """The written bytes as merged ``[start, end)`` spans (for the control file)."""
        return merge_spans((s.start, s.pos) for s in self._segments)

    def split_free(self, parts: int) -> None:
        """Cut the free segments into about ``parts`` pieces of at least ``min_split`` each.

        Called once the size is known, before the connections start, so that they
        begin on separate ranges instead of stealing from each other at once.
        """
        free = [s for s in self._segments if s.owner is None and not s.finished]
        total = sum(s.remaining for s in free)
        if parts <= 1 or total == 0:
            return
        piece = max(self.min_split, -(-total // parts))
        for seg in free:
            bounds = [seg.pos]
            while seg.end - (bounds[-1] + piece) >= self.min_split:
                bounds.append(bounds[-1] + piece)
            bounds.append(seg.end)
            seg.end = bounds[1]
            self._segments.extend(Segment(a, b, a) for a, b in pairwise(bounds[1:]))
        self._segments.sort(key=lambda s: s.start)

    def claim(self, start: int, end: int, owner: int) -> Segment:
        """Own the free range starting at ``start`` (the first request of a download)."""
        for seg in self._segments:
            if seg.owner is None and seg.pos == start and not seg.finished:
                if end < seg.end and seg.end - end >= self.min_split:
                    self._insert_after(seg, Segment(end, seg.end, end))
                    seg.end = end
                seg.owner = owner
                return seg
        raise ValueError(f"no free range starts at byte {start}")

    def next_range(self, owner: int, least: int = 0) -> Segment | None:
        """Work for a free connection, or None when nothing is left worth taking.

        A steal needs a segment with at least ``least`` bytes left (and never
        less than twice ``min_split``).
        """
        free = [s for s in self._segments if s.owner is None and not s.finished]
        if free:
            seg = max(free, key=lambda s: s.remaining)
            seg.owner = owner
            return seg
        least = max(least, 2 * self.min_split)
        busy = [s for s in self._segments if s.owner is not None and s.remaining >= least]
        if not busy:
            return None
        victim = max(busy, key=lambda s: s.remaining)
        mid = victim.pos + victim.remaining // 2
        stolen = Segment(mid, victim.end, mid, owner)
        victim.end = mid
        self._insert_after(victim, stolen)
        return stolen

    def _insert_after(self, seg: Segment, new: Segment) -> None:
        self._segments.insert(self._segments.index(seg) + 1, new)

    def advance(self, seg: Segment, nbytes: int) -> None:
        """Record ``nbytes`` written at ``seg.pos``."""
        if nbytes < 0 or seg.pos + nbytes > seg.end:
            raise ValueError("write past the end of the segment")
        seg.pos += nbytes

    def rewind(self, seg: Segment) -> None:
        """Forget what was written in ``seg`` (a single stream that must start over)."""
        seg.pos = seg.start

    def release(self, seg: Segment) -> None:
        """The owner stopped (error, pause, fewer connections): the rest is free again."""
        seg.owner = None

    def release_all(self) -> None:
        for seg in self._segments:
            seg.owner = None
