"""Jobs and their files: what the user asked for, and what it expanded to.

A :class:`BulkDownloadJob` is one request (a model, a version, a creator, a
search, a URL list); once expanded it owns :class:`JobFile` objects, each a
:class:`~civitai_tui.download.request.DownloadRequest` (what to fetch, as
planned) and its progress. Job-level progress is derived from the files, never
stored twice.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from civitai_tui.bulk.states import JobState, check_transition
from civitai_tui.civitai.planner import BulkFilters, PlanOptions
from civitai_tui.civitai.selection import FileSelection
from civitai_tui.download.request import DownloadRequest
from civitai_tui.events import FileInfo
from civitai_tui.security.redact import mask_target


class FileState(StrEnum):
    PENDING = "pending"
    DOWNLOADING = "downloading"
    COMPLETED = "completed"
    SKIPPED = "skipped"  # already present and verified
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in {FileState.COMPLETED, FileState.SKIPPED}


def resolve_dest(dest: str | Path | None, configured: str | None = None) -> Path:
    """Where a client's job goes, as an absolute path: ``dest``, else ``bulk.dest``,
    else the client's current folder (relative ones against it, ``~`` expanded).

    Clients resolve it because the engine runs in a folder of its own.
    """
    return Path(dest or configured or ".").expanduser().resolve()


@dataclass(frozen=True)
class JobOptions:
    """How a job's targets expand and where its files go."""

    dest: str = ""
    latest_only: bool = True
    limit: int | None = None  # bulk targets: at most this many models
    types: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    sort: str | None = None
    period: str | None = None
    nsfw: bool | None = None
    primary_only: bool = True
    formats: tuple[str, ...] = ()
    #: This job's own speed limit (bytes/s; None: only the overall one), changeable live.
    max_speed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    def plan_options(self, preview_nsfw_level: int = 1) -> PlanOptions:
        """These options as the planner takes them."""
        return PlanOptions(
            dest=Path(self.dest or "."),
            selection=FileSelection(primary_only=self.primary_only, formats=self.formats),
            filters=BulkFilters(
                types=self.types,
                base_models=self.base_models,
                sort=self.sort,
                period=self.period,
                nsfw=self.nsfw,
            ),
            latest_only=self.latest_only,
            limit=self.limit,
            preview_nsfw_level=preview_nsfw_level,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobOptions:
        """Options from JSON; a value of the wrong type raises ``TypeError`` naming the key."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name, value in known.items():
            if not _OPTION_CHECKS[name](value):
                raise TypeError(f"{name!r} must be {_OPTION_RULES[name]}, not {value!r}")
        for name in ("types", "base_models", "formats"):
            if name in known:
                known[name] = tuple(known[name])
        return cls(**known)


def _texts(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


_OPTION_RULES = {
    "dest": "a path",
    "latest_only": "true or false",
    "limit": "a whole number >= 1 or null",
    "types": "a list of strings",
    "base_models": "a list of strings",
    "sort": "a string or null",
    "period": "a string or null",
    "nsfw": "true, false or null",
    "primary_only": "true or false",
    "formats": "a list of strings",
    "max_speed": "a whole number of bytes/s >= 1 or null",
}
_OPTION_CHECKS = {
    "dest": lambda v: isinstance(v, str),
    "latest_only": lambda v: isinstance(v, bool),
    "limit": lambda v: v is None or (type(v) is int and v >= 1),
    "types": _texts,
    "base_models": _texts,
    "sort": lambda v: v is None or isinstance(v, str),
    "period": lambda v: v is None or isinstance(v, str),
    "nsfw": lambda v: v is None or isinstance(v, bool),
    "primary_only": lambda v: isinstance(v, bool),
    "formats": _texts,
    "max_speed": lambda v: v is None or (type(v) is int and v >= 1),
}


#: JobFile attributes not in its progress record (the request has its own; ``waiting``
#: is worked out when asked).
NOT_SAVED = frozenset({"request", "waiting"})


@dataclass
class JobFile:
    """One file of a job: what to fetch (its saveable request) and how far along it is.

    Every attribute but ``request`` is progress; ``state.db`` keeps the request and
    the progress as one JSON value each (``request_record`` / ``progress_record``),
    so a new attribute here or in the request needs no other edit to be saved.
    """

    request: DownloadRequest
    state: FileState = FileState.PENDING
    done: int = 0
    attempts: int = 0
    last_status: int | None = None
    error_kind: str | None = None
    error: str | None = None
    path: str | None = None
    #: Where the content came from when it was not downloaded: a verified copy
    #: elsewhere in the library (before the file runs: the copy it will be placed from).
    origin: str | None = None
    #: How the file got to ``path``: "download", "present" (already there),
    #: "hardlink", "reflink" or "copy" (from ``origin``); None until it is there.
    method: str | None = None
    #: Something that went wrong beside the file itself (its sidecar), shown, not fatal.
    warning: str | None = None
    #: Why it is not moving now (``bulk.waiting``; worked out when asked, never stored).
    waiting: str | None = None

    @property
    def info(self) -> FileInfo:
        return self.request.info

    @property
    def key(self) -> str:
        return self.request.info.key

    @property
    def size(self) -> int | None:
        return self.request.info.size

    @property
    def final(self) -> Path | None:
        """Where the file goes, when its name is known before the download."""
        name = self.request.filename
        return self.request.dest_dir / name if name else None

    def learn_size(self, total: int) -> None:
        """A plain URL's size, once its first answer says (a resume then expects it)."""
        if self.request.info.size is None:
            info = replace(self.request.info, size=total)
            self.request = replace(self.request, info=info, expected_size=total)

    def progress_record(self) -> dict[str, Any]:
        """The progress as JSON-ready data."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in NOT_SAVED}

    @classmethod
    def from_records(cls, request: dict[str, Any], progress: dict[str, Any]) -> JobFile:
        """The file two records describe (attributes they lack: defaults)."""
        known = {k: v for k, v in progress.items() if k in cls.__dataclass_fields__}
        if "state" in known:
            known["state"] = FileState(known["state"])
        return cls(request=DownloadRequest.from_record(request), **known)

    def view(self) -> dict[str, Any]:
        """A JSON-ready view: where the file is (or why it is not) and where it came from."""
        done = self.state.done
        return {
            "key": self.key,
            "name": self.info.name,
            "model_type": self.info.model_type,
            "size": self.size,
            "done": self.done,
            "state": str(self.state),
            "attempts": self.attempts,
            "last_status": self.last_status,
            "error_kind": self.error_kind,
            "error": self.error,
            "path": self.path if done else None,
            "reason": None if done else (self.error or self.waiting or _WAITING[self.state]),
            "waiting": self.waiting,
            "content_from": self.method,
            "content_source": self.origin,
            "warning": self.warning,
            "sha256": self.request.sha256,
        }


#: Why a file that is not done has no path yet, when it has no error.
_WAITING = {
    FileState.PENDING: "not fetched yet",
    FileState.DOWNLOADING: "downloading",
    FileState.FAILED: "failed",
    FileState.CANCELLED: "cancelled",
}


@dataclass
class BulkDownloadJob:
    """A user's request, its priority and state, and the files it expanded to."""

    name: str
    targets: tuple[str, ...]
    options: JobOptions = field(default_factory=JobOptions)
    priority: int = 0
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: JobState = JobState.PENDING
    seq: int = 0  # FIFO order within a priority level
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    expanded: bool = False
    error: str | None = None  # job-level failure (e.g. a target that does not exist)
    files: list[JobFile] = field(default_factory=list)
    #: Why it is not moving now (``bulk.waiting``; worked out when asked, never stored).
    waiting: str | None = None

    def transition(self, new: JobState) -> JobState:
        """Move to ``new`` (raising on an illegal change); returns the old state."""
        old = self.state
        check_transition(self.id, old, new)
        self.state = new
        now = time.time()
        if new is JobState.PROCESSING and self.started_at is None:
            self.started_at = now
        self.finished_at = now if new.finished else None
        return old

    @property
    def total_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)

    @property
    def done_bytes(self) -> int:
        return sum((f.size or f.done) if f.state.done else f.done for f in self.files)

    @property
    def files_done(self) -> int:
        return sum(1 for f in self.files if f.state.done)

    @property
    def failures(self) -> list[JobFile]:
        return [f for f in self.files if f.state is FileState.FAILED]

    def failure_summary(self) -> str:
        """The failures aggregated: per file, reason, attempts and last HTTP status."""
        parts = []
        for f in self.failures:
            status = f" HTTP {f.last_status}" if f.last_status else ""
            parts.append(
                f"{f.info.name}: {f.error_kind}{status} after {f.attempts} attempt(s): {f.error}"
            )
        if self.error:
            parts.insert(0, self.error)
        return "; ".join(parts)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready view for the control API and ``ls``."""
        return {
            "id": self.id,
            "name": self.name,
            "state": str(self.state),
            "priority": self.priority,
            "max_speed": self.options.max_speed,
            "targets": [mask_target(t) for t in self.targets],
            "files_total": len(self.files),
            "files_done": self.files_done,
            "files_failed": len(self.failures),
            "total_bytes": self.total_bytes,
            "done_bytes": self.done_bytes,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.failure_summary() or None,
            "waiting": self.waiting,
        }
