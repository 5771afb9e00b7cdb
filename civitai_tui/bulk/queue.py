"""The priority queue of waiting jobs: higher priority first, FIFO within a level.

Priorities can change while a job waits: the old heap entry is left behind and
skipped when it surfaces (lazy invalidation), so every operation stays
O(log n).
"""

from __future__ import annotations

import heapq
import itertools


class JobQueue:
    """Job ids ordered by (priority desc, arrival order asc)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str]] = []
        self._live: dict[str, tuple[int, int, str]] = {}
        self._arrivals = itertools.count()

    def push(self, job_id: str, priority: int, seq: int | None = None) -> None:
        """Queue ``job_id`` (or move it if already queued); ``seq`` keeps a stored order."""
        order = next(self._arrivals) if seq is None else seq
        entry = (-priority, order, job_id)
        self._live[job_id] = entry
        heapq.heappush(self._heap, entry)

    def reprioritize(self, job_id: str, priority: int) -> bool:
        """Change a waiting job's priority, keeping its arrival order; False if not queued."""
        entry = self._live.get(job_id)
        if entry is None:
            return False
        self.push(job_id, priority, entry[1])
        return True

    def remove(self, job_id: str) -> bool:
        """Take ``job_id`` out of the queue; False if it was not queued."""
        return self._live.pop(job_id, None) is not None

    def pop(self) -> str | None:
        """The next job id to run, or None."""
        while self._heap:
            entry = heapq.heappop(self._heap)
            if self._live.get(entry[2]) == entry:
                del self._live[entry[2]]
                return entry[2]
        return None

    def peek(self) -> str | None:
        while self._heap:
            entry = self._heap[0]
            if self._live.get(entry[2]) == entry:
                return entry[2]
            heapq.heappop(self._heap)
        return None

    def ordered(self) -> list[str]:
        """The waiting job ids in the order they will run."""
        return [entry[2] for entry in sorted(self._live.values())]

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._live

    def __len__(self) -> int:
        return len(self._live)
