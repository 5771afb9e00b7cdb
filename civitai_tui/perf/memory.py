"""What the probes learned, kept between runs: one connection budget per storage host.

A host seen before starts at the budget its probe settled on last time instead
of probing from the mode's start again (the probe still corrects it). The file
is ``perf_hosts.json`` in the state dir, written atomically; entries older than
``MAX_AGE`` are forgotten, and a missing or unreadable file is an empty memory
(it is a cache: losing it costs one probe, never a download).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from civitai_tui.atomic import write_atomic

log = logging.getLogger(__name__)

FILE_NAME = "perf_hosts.json"
MAX_AGE = 7 * 24 * 3600.0
REFRESH_AFTER = 24 * 3600.0


@dataclass(frozen=True)
class LearnedHost:
    budget: int
    rate: float  # bytes/s at that budget
    at: float  # wall-clock time learned
    #: The server's connection limit, if one was learned from refusals.
    limit: int | None = None
    #: Connections per file, if each connection looked capped (more files: more connections).
    per_file: int | None = None

    def describe(self) -> str:
        per_file = self.per_file
        text = f"{per_file} connections per file" if per_file else f"{self.budget} connections"
        return text + (f", at most {self.limit}" if self.limit else "")


class HostMemory:
    """Learned budgets by host, loaded once and saved when they change."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self.hosts: dict[str, LearnedHost] = self._load()
        self._saved = dict(self.hosts)

    def _load(self) -> dict[str, LearnedHost]:
        try:
            raw = json.loads(self.path.read_text())
            now = self._clock()
            hosts = {
                str(host): LearnedHost(
                    int(v["budget"]),
                    float(v["rate"]),
                    float(v["at"]),
                    _optional_int(v.get("limit")),
                    _optional_int(v.get("per_file")),
                )
                for host, v in raw.get("hosts", {}).items()
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("ignoring learned connection budgets in %s: %s", self.path, exc)
            return {}
        return {h: v for h, v in hosts.items() if v.budget >= 1 and now - v.at < MAX_AGE}

    def budget(self, host: str) -> int | None:
        learned = self.hosts.get(host)
        return learned.budget if learned else None

    def learn(
        self,
        host: str,
        budget: int,
        rate: float,
        *,
        limit: int | None = None,
        per_file: int | None = None,
    ) -> None:
        """Remember what ``host`` taught (the same again is refreshed at most daily)."""
        known = self.hosts.get(host)
        now = self._clock()
        fresh = LearnedHost(budget, rate, now, limit, per_file)
        same = known is not None and (known.budget, known.limit, known.per_file) == (
            budget,
            limit,
            per_file,
        )
        if not same or now - known.at > REFRESH_AFTER:  # type: ignore[union-attr]
            self.hosts[host] = fresh

    def save(self) -> None:
        """Write the file if anything changed since the last save (errors are logged)."""
        if self.hosts == self._saved:
            return
        data = {"version": 1, "hosts": {h: asdict(v) for h, v in sorted(self.hosts.items())}}
        try:
            write_atomic(self.path, json.dumps(data, indent=1).encode(), mode=0o600)
        except OSError as exc:
            log.warning("could not save learned connection budgets to %s: %s", self.path, exc)
            return
        self._saved = dict(self.hosts)


def _optional_int(value: object) -> int | None:
    """A positive count from the file, or None (absent in files of older versions)."""
    if value is None:
        return None
    number = int(value)  # type: ignore[call-overload]
    if number < 1:
        raise ValueError(f"not a connection count: {value!r}")
    return number
