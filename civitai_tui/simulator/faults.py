"""Fault knobs of the simulator's storage origin: data only, settable at run time.

A :class:`FaultBoard` holds one global :class:`Faults` and optional per-file
overrides (by CivitAI file id). Tests set them directly (``sim.faults``) or over
HTTP (``POST /_sim/faults`` on the API origin with ``{"file_id": 7, "faults":
{...}}``; ``file_id`` omitted means global; ``{"api_faults": {...}}`` sets the
API origin's :class:`ApiFaults`; ``DELETE /_sim/faults`` resets both).
Every field's zero value means "no fault".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _set_knobs(target: Any, changes: dict[str, Any]) -> None:
    names = {f.name for f in dataclasses.fields(target)}
    unknown = set(changes) - names
    if unknown:
        raise TypeError(f"unknown fault knob(s): {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(target, name, value)


@dataclass
class Faults:
    """What the storage origin does wrong while serving one file's bytes."""

    #: Cap each connection's body rate (bytes/s); 0 = unlimited.
    per_connection_rate: int = 0
    #: Cap the whole origin's body rate (bytes/s, shared by all connections).
    total_rate: int = 0
    #: Wait this long (s) before the first body byte of every response.
    first_byte_latency: float = 0.0
    #: Abort the connection after sending this many body bytes of a response.
    reset_after_bytes: int = 0
    #: Stop sending (keep the socket open) after this many body bytes ...
    stall_after_bytes: int = 0
    #: ... for this long (s); the response then ends with an abort.
    stall_seconds: float = 0.0
    #: After ``trickle_after_bytes`` body bytes, drop the connection's rate to
    #: ``trickle_rate`` bytes/s (a slow-loris server).
    trickle_after_bytes: int = 0
    trickle_rate: int = 0
    #: Answer the next ``fail_count`` requests with ``fail_status`` (429/503/500 ...),
    #: with ``Retry-After: retry_after`` when it is > 0.
    fail_status: int = 0
    fail_count: int = 0
    retry_after: float = 0.0
    #: Refuse requests while more than this many TCP connections are open (idle
    #: kept-alive ones too; every client here is on loopback: a per-client limit) ...
    max_connections: int = 0
    #: ... or while this many file responses are being sent (nginx's ``limit_conn``:
    #: only connections with a request in progress count) ...
    max_active_requests: int = 0
    #: ... by ``limit_answer``: "503" (with ``Retry-After: limit_retry_after``), "429"
    #: (no Retry-After), "reset" (close the connection, no answer) or "hang" (no
    #: answer for ``limit_hang_seconds``, then close).
    limit_answer: str = "503"
    limit_retry_after: float = 1.0
    limit_hang_seconds: float = 60.0
    #: Bursty pacing: a capped connection sends this many seconds' worth of its rate
    #: at once, then nothing until the time is made up (0 = smooth).
    pacing_burst: float = 0.0
    #: Ignore ``Range`` and answer 200 with the whole body.
    ignore_range: bool = False
    #: Send a Content-Length that disagrees with the body.
    wrong_content_length: bool = False
    #: Send a Content-Range whose start differs from the one asked for.
    wrong_content_range: bool = False
    #: Gzip the body of ranged responses (Content-Encoding: gzip) whatever was asked.
    gzip_ranged: bool = False
    #: After this many requests for the file, its ETag and bytes change (a new upload).
    etag_change_after_requests: int = 0
    #: Flip bytes in the body (the hash will not match).
    corrupt: bool = False
    #: Serve an HTML page with 200 instead of the file.
    html_body: bool = False
    #: Answer 403 AccessDenied to validly signed, unexpired links with these ``sig=``
    #: values (a revoked signature, or a storage clock ahead of ours).
    revoked: frozenset[str] = frozenset()

    def update(self, **changes: Any) -> None:
        """Set several knobs; unknown names raise ``TypeError``."""
        _set_knobs(self, changes)


@dataclass
class FaultBoard:
    """The global faults plus per-file overrides; ``for_file`` picks the one in force."""

    global_: Faults = field(default_factory=Faults)
    per_file: dict[int, Faults] = field(default_factory=dict)

    def for_file(self, file_id: int) -> Faults:
        return self.per_file.get(file_id, self.global_)

    def set(self, file_id: int | None = None, **knobs: Any) -> Faults:
        """Set knobs globally (``file_id=None``) or for one file (a fresh override)."""
        if file_id is None:
            self.global_.update(**knobs)
            return self.global_
        faults = self.per_file.setdefault(file_id, Faults())
        faults.update(**knobs)
        return faults

    def reset(self) -> None:
        self.global_ = Faults()
        self.per_file.clear()


@dataclass
class ApiFaults:
    """What the API origin does wrong (settable like :class:`Faults`)."""

    #: Answer the next ``fail_count`` metadata requests (``/api/v1/...``) with
    #: ``fail_status`` (429/503 ...), with ``Retry-After`` when ``retry_after`` > 0.
    fail_status: int = 0
    fail_count: int = 0
    retry_after: float = 0.0
    #: Answer every ``/api/...`` request with a Cloudflare-style 403 HTML challenge
    #: page (header ``cf-mitigated: challenge``).
    challenge: bool = False

    def update(self, **changes: Any) -> None:
        """Set several knobs; unknown names raise ``TypeError``."""
        _set_knobs(self, changes)
