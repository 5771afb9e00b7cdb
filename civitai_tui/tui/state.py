"""What the UI knows about the engine, as plain data: jobs, files and performance samples.

The bridge feeds it the engine's typed events (decoded once, in the bridge, by
:meth:`~civitai_tui.events.Event.from_dict`), the WebSocket ``snapshot``, job
summaries from ``GET /v1/jobs`` and one job's detail; the app's flush timer reads
what changed (``take_dirty``) and paints only that. Job and file states are the
engine's own enums. Nothing here knows about Textual, so every rule is testable
without a screen.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from civitai_tui.bulk.jobs import FileState
from civitai_tui.bulk.states import JobState
from civitai_tui.events import (
    Event,
    FileCompleted,
    FileFailed,
    FileInfo,
    FileProgress,
    FileStarted,
    JobStateChanged,
    MetricsSample,
    NetworkConditionChanged,
    OptimizerDecision,
    RetryScheduled,
    SecurityScanFinished,
    StateSaveFailed,
)

#: Samples kept for the graphs (the engine samples about once a second: ~5 minutes).
HISTORY = 300
DECISIONS_KEPT = 200


@dataclass
class FileView:
    """One file of a job as the detail pane shows it."""

    key: str
    name: str
    size: int | None = None
    done: int = 0
    state: FileState = FileState.PENDING
    speed: float = 0.0
    connections: int = 0
    attempts: int = 0
    verification: str = ""
    scan: str = ""
    error: str = ""
    #: Where the file is (and where its content came from), or why it is not there
    #: when there is no error to say it.
    where: str = ""


def where_text(raw: dict[str, Any]) -> str:
    """A file's place as the engine reports it: path and origin, or the reason for none."""
    if raw.get("path"):
        text = str(raw["path"])
        if raw.get("content_source"):
            text += f" ({raw.get('content_from')} of {raw['content_source']})"
        elif raw.get("content_from") == "present":
            text += " (already there)"
    else:
        text = "" if raw.get("error") else str(raw.get("reason") or "")
    if raw.get("warning"):
        text += f"; {raw['warning']}" if text else str(raw["warning"])
    return text


@dataclass
class JobView:
    """One job row of the queue table."""

    id: str
    name: str = ""
    state: JobState = JobState.PENDING
    priority: int = 0
    targets: tuple[str, ...] = ()
    files_total: int = 0
    files_done: int = 0
    files_failed: int = 0
    total_bytes: int = 0
    done_bytes: int = 0
    error: str = ""
    #: Why it is not moving now, as the engine says (empty: it is, or it is not queued).
    waiting: str = ""
    types: set[str] = field(default_factory=set)
    files: dict[str, FileView] = field(default_factory=dict)

    @property
    def speed(self) -> float:
        return sum(f.speed for f in self.files.values() if f.state is FileState.DOWNLOADING)

    @property
    def kind(self) -> str:
        """The model types seen, else what kind of target the job came from."""
        if self.types:
            return ",".join(sorted(self.types))
        first = self.targets[0] if self.targets else ""
        if "://" in first:
            return "url"
        return first.split(":", 1)[0] if ":" in first else "?"

    def apply_summary(self, data: dict[str, Any]) -> bool:
        """Take the engine's summary values; True when anything shown changed."""
        before = self._shown()
        self.name = data.get("name") or self.name
        self.state = JobState(data.get("state", self.state))
        self.priority = int(data.get("priority", self.priority))
        self.targets = tuple(data.get("targets", self.targets))
        self.files_total = int(data.get("files_total", self.files_total))
        self.files_done = int(data.get("files_done", self.files_done))
        self.files_failed = int(data.get("files_failed", self.files_failed))
        self.total_bytes = int(data.get("total_bytes") or 0)
        self.done_bytes = int(data.get("done_bytes") or 0)
        self.error = data.get("error") or ""
        self.waiting = data.get("waiting") or ""
        if self.state is not JobState.PROCESSING:
            self.stop_files()
        return self._shown() != before

    def apply_files(self, files: list[dict[str, Any]]) -> None:
        """Replace the file list with the engine's (keeps live speeds and scan verdicts)."""
        fresh: dict[str, FileView] = {}
        for raw in files:
            old = self.files.get(raw["key"])
            view = old or FileView(key=raw["key"], name=raw.get("name", ""))
            view.name = raw.get("name") or view.name
            view.size = raw.get("size")
            view.done = int(raw.get("done") or 0)
            view.state = FileState(raw.get("state", view.state))
            view.attempts = int(raw.get("attempts") or 0)
            view.error = raw.get("error") or ""
            view.where = where_text(raw)
            if raw.get("model_type"):
                self.types.add(raw["model_type"])
            if view.state.done and raw.get("sha256") and not view.verification:
                view.verification = "sha256 ok"
            if view.state is not FileState.DOWNLOADING:
                view.speed = 0.0
            fresh[view.key] = view
        self.files = fresh

    def stop_files(self) -> None:
        for f in self.files.values():
            f.speed = 0.0
            if f.state is FileState.DOWNLOADING:
                f.state = FileState.PENDING

    def _shown(self) -> tuple[Any, ...]:
        return (
            self.name,
            self.state,
            self.priority,
            self.files_total,
            self.files_done,
            self.files_failed,
            self.total_bytes,
            self.done_bytes,
            self.error,
            self.waiting,
        )


@dataclass(frozen=True)
class Sample:
    """One ``metrics_sample`` event."""

    ts: float
    throughput: float
    cpu: float
    memory: float
    engine_cpu: float
    engine_rss: int
    connections: int


@dataclass
class PerfView:
    """The performance screen's data: samples, per-job speeds, optimizer state."""

    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=HISTORY))
    job_speeds: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    decisions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=DECISIONS_KEPT))
    condition: str | None = None
    optimizer: dict[str, Any] | None = None  # GET /v1/performance, when the engine has it
    dirty: bool = False

    def add_sample(self, event: MetricsSample, jobs: dict[str, JobView]) -> None:
        self.samples.append(
            Sample(
                ts=event.ts,
                throughput=event.throughput,
                cpu=event.cpu_percent,
                memory=event.memory_percent,
                engine_cpu=event.engine_cpu_percent,
                engine_rss=event.engine_rss,
                connections=event.connections,
            )
        )
        for job in jobs.values():
            if job.state is JobState.PROCESSING or job.id in self.job_speeds:
                series = self.job_speeds.setdefault(job.id, deque(maxlen=HISTORY))
                series.append((event.ts, job.speed))
        self.dirty = True


@dataclass
class EngineState:
    """Everything the UI shows, fed from the control API's JSON."""

    jobs: dict[str, JobView] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    perf: PerfView = field(default_factory=PerfView)
    connection: str = "connecting to the engine…"
    connected: bool = False
    #: Why the engine cannot save to state.db, while it cannot (shown in the title).
    store_error: str | None = None
    events_seen: int = 0
    #: (job id, state) of jobs that just finished, for the app to announce.
    finished: list[tuple[str, JobState]] = field(default_factory=list)
    _dirty: set[str] = field(default_factory=set)
    _reordered: bool = True

    # ----------------------------------------------------------------- reading

    def ordered_jobs(self) -> list[JobView]:
        return [self.jobs[i] for i in self.order if i in self.jobs]

    def take_dirty(self) -> tuple[set[str], bool]:
        """The ids changed since the last call, and whether rows came, went or moved."""
        dirty, reordered = self._dirty, self._reordered
        self._dirty, self._reordered = set(), False
        return dirty, reordered

    @property
    def has_changes(self) -> bool:
        return bool(self._dirty) or self._reordered

    # ----------------------------------------------------------------- writing

    def set_connection(self, connected: bool, text: str) -> None:
        if (connected, text) != (self.connected, self.connection):
            self.connected, self.connection = connected, text
            self._reordered = True

    def apply_snapshot(self, jobs: list[dict[str, Any]], store_error: str | None) -> None:
        """The WebSocket's first message: every job with its files, and the store's health."""
        self._set_store_error(store_error)
        self.apply_summaries(jobs)
        for detail in jobs:
            self.jobs[detail["id"]].apply_files(detail.get("files", []))

    def apply_summaries(self, summaries: list[dict[str, Any]]) -> None:
        """The engine's job list, in queue order: add, update, drop and reorder rows."""
        order = [s["id"] for s in summaries]
        for summary in summaries:
            job = self.jobs.get(summary["id"])
            if job is None:
                job = self.jobs[summary["id"]] = JobView(id=summary["id"])
                self._reordered = True
            if job.apply_summary(summary):
                self._dirty.add(job.id)
        for gone in set(self.jobs) - set(order):
            del self.jobs[gone]
            self._reordered = True
        if order != self.order:
            self.order = order
            self._reordered = True

    def apply_detail(self, detail: dict[str, Any]) -> None:
        """``GET /v1/jobs/{id}``: one job with its files."""
        job = self.jobs.get(detail["id"])
        if job is None:
            return
        job.apply_summary(detail)
        job.apply_files(detail.get("files", []))
        self._dirty.add(job.id)

    def apply_events(self, events: Iterable[Event]) -> None:
        for event in events:
            self.apply_event(event)

    def apply_event(self, event: Event) -> None:
        """One engine event; a kind the UI does not show changes nothing."""
        self.events_seen += 1
        match event:
            case FileProgress():
                self._on_file_progress(event)
            case FileStarted():
                self._on_file_started(event)
            case FileCompleted():
                self._on_file_completed(event)
            case FileFailed():
                self._on_file_failed(event)
            case RetryScheduled():
                self._on_retry(event)
            case JobStateChanged():
                self._on_job_state(event)
            case SecurityScanFinished():
                self._on_scan(event)
            case MetricsSample():
                self.perf.add_sample(event, self.jobs)
            case OptimizerDecision():
                self.perf.decisions.appendleft(event.to_dict())
                self.perf.dirty = True
            case NetworkConditionChanged():
                self.perf.condition = event.new
                self.perf.dirty = True
            case StateSaveFailed():
                self._set_store_error(None if event.recovered else event.message)

    # ------------------------------------------------------------ event handlers

    def _set_store_error(self, message: str | None) -> None:
        if message != self.store_error:
            self.store_error = message or None
            self._reordered = True

    def _job_for_key(self, key: str, job_id: str | None = None) -> JobView | None:
        return self.jobs.get(job_id or key.split(":", 1)[0])

    def _file(self, job: JobView, key: str, name: str = "") -> FileView:
        view = job.files.get(key)
        if view is None:
            view = job.files[key] = FileView(key=key, name=name or key.rsplit(":", 1)[-1])
        return view

    def _on_job_state(self, event: JobStateChanged) -> None:
        job = self.jobs.get(event.job_id)
        if job is None:
            job = self.jobs[event.job_id] = JobView(id=event.job_id, name="…")
            self.order.append(job.id)
            self._reordered = True
        new = JobState(event.new)
        if new.finished and not (event.old and JobState(event.old).finished):
            self.finished.append((job.id, new))
        job.state = new
        if new is not JobState.PROCESSING:
            job.stop_files()
        self._dirty.add(job.id)

    def _file_of(self, info: FileInfo) -> tuple[JobView, FileView] | None:
        job = self._job_for_key(info.key, info.job_id)
        return None if job is None else (job, self._file(job, info.key, info.name))

    def _on_file_started(self, event: FileStarted) -> None:
        found = self._file_of(event.file)
        if found is None:
            return
        job, view = found
        job.done_bytes += event.resumed_bytes - view.done
        view.done = event.resumed_bytes
        view.size = event.file.size or view.size
        view.state = FileState.DOWNLOADING
        if event.file.model_type:
            job.types.add(event.file.model_type)
        self._dirty.add(job.id)

    def _on_file_progress(self, event: FileProgress) -> None:
        job = self._job_for_key(event.key)
        if job is None:
            return
        view = self._file(job, event.key)
        job.done_bytes += event.done - view.done
        if not view.size and event.total:  # first known now (a plain URL): count it
            job.total_bytes += event.total
        view.done, view.size = event.done, event.total or view.size
        view.speed = event.speed
        view.connections = event.connections
        view.state = FileState.DOWNLOADING
        self._dirty.add(job.id)

    def _on_file_completed(self, event: FileCompleted) -> None:
        found = self._file_of(event.file)
        if found is None:
            return
        job, view = found
        if not view.state.done:
            job.files_done += 1
        job.done_bytes += event.bytes - view.done
        view.done = view.size = event.bytes
        view.state, view.speed = FileState.COMPLETED, 0.0
        view.connections = event.connections
        view.attempts = max(view.attempts, event.retries + 1)
        view.verification = "sha256 ok" if event.sha256 else "size ok"
        view.error = ""
        self._dirty.add(job.id)

    def _on_file_failed(self, event: FileFailed) -> None:
        found = self._file_of(event.file)
        if found is None:
            return
        job, view = found
        if view.state is not FileState.FAILED:
            job.files_failed += 1
        view.state, view.speed = FileState.FAILED, 0.0
        view.attempts = event.attempts
        view.error = f"{event.kind}: {event.message}"
        if event.kind in ("hash_mismatch", "size_mismatch", "invalid_format"):
            view.verification = event.kind.replace("_", " ")
        if event.kind == "unsafe":
            view.scan = "dangerous"
        self._dirty.add(job.id)

    def _on_retry(self, event: RetryScheduled) -> None:
        job = self._job_for_key(event.key)
        if job is None:
            return
        view = self._file(job, event.key)
        view.attempts = event.attempt
        view.error = f"retry in {event.delay:.1f} s: {event.reason}"
        self._dirty.add(job.id)

    def _on_scan(self, event: SecurityScanFinished) -> None:
        job = self._job_for_key(event.key)
        if job is None:
            return
        self._file(job, event.key).scan = event.verdict
        self._dirty.add(job.id)
