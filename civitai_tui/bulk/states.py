"""The job state machine: states, legal transitions, and the error for illegal ones.

::

    PENDING → PROCESSING ⇄ PAUSED
    PROCESSING → COMPLETED | FAILED | CANCELLED ;  PAUSED → CANCELLED
    COMPLETED / FAILED / CANCELLED → PENDING (explicit retry)

Two additions a queue user expects, like aria2's ``pause`` of a waiting
download: a PENDING job can be paused (held back; resume puts it back to
PENDING) or cancelled before it starts. A COMPLETED job can be queued again
too: its files are checked where they were asked for, and a missing one is
fetched again.
"""

from __future__ import annotations

from enum import StrEnum

from civitai_tui.errors import CivitaiTuiError, FailureKind


class JobState(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        """True for the states a job only leaves by an explicit retry."""
        return self in FINISHED_STATES


FINISHED_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.PROCESSING, JobState.PAUSED, JobState.CANCELLED}),
    JobState.PROCESSING: frozenset(
        {
            JobState.PAUSED,
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.PENDING,  # engine shutdown: put back in the queue, resumed on restart
        }
    ),
    JobState.PAUSED: frozenset({JobState.PROCESSING, JobState.PENDING, JobState.CANCELLED}),
    JobState.COMPLETED: frozenset({JobState.PENDING}),
    JobState.FAILED: frozenset({JobState.PENDING}),
    JobState.CANCELLED: frozenset({JobState.PENDING}),
}


class IllegalTransition(CivitaiTuiError):
    """A state change the state machine does not allow."""

    def __init__(self, job_id: str, old: JobState, new: JobState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "none (it is final)"
        super().__init__(
            FailureKind.INVALID_STATE,
            f"job {job_id} is {old}; it cannot become {new} (allowed from {old}: {allowed})",
        )
        self.old = old
        self.new = new


def check_transition(job_id: str, old: JobState, new: JobState) -> None:
    """Raise :class:`IllegalTransition` unless ``old → new`` is allowed."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(job_id, old, new)
