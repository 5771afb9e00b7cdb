"""What the UI knows about the engine, as plain data: jobs, files and performance samples.

The bridge feeds it decoded control-API JSON (the WebSocket ``snapshot`` and
``events`` messages, job summaries from ``GET /v1/jobs``, one job's detail);
the app's flush timer reads what changed (``take_dirty``) and paints only that.
Nothing here knows about Textual, so every rule is testable without a screen.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: Samples kept for the graphs (the engine samples about once a second: ~5 minutes).
HISTORY = 300
DECISIONS_KEPT = 200
FINISHED_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
DONE_FILE_STATES = frozenset({"completed", "skipped"})


FINISHED_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


@dataclass
class FileView:
    """One file of a job as the detail pane shows it."""

    key: str
    name: str
    size: int | None = None
    done: int = 0
    state: str = "pending"
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
    state: str = "PENDING"
    priority: int = 0
    targets: tuple[str, ...] = ()
    files_total: int = 0
    files_done: int = 0
    files_failed: int = 0
    total_bytes: int = 0
    done_bytes: int = 0
    error: str = ""
    types: set[str] = field(default_factory=set)
    files: dict[str, FileView] = field(default_factory=dict)

    @property
    def speed(self) -> float:
        return sum(f.speed for f in self.files.values() if f.state == "downloading")

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
        self.state = data.get("state", self.state)
        self.priority = int(data.get("priority", self.priority))
        self.targets = tuple(data.get("targets", self.targets))
        self.files_total = int(data.get("files_total", self.files_total))
        self.files_done = int(data.get("files_done", self.files_done))
        self.files_failed = int(data.get("files_failed", self.files_failed))
        self.total_bytes = int(data.get("total_bytes") or 0)
        self.done_bytes = int(data.get("done_bytes") or 0)
        self.error = data.get("error") or ""
        if self.state != "PROCESSING":
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
            view.state = raw.get("state", view.state)
            view.attempts = int(raw.get("attempts") or 0)
            view.error = raw.get("error") or ""
            view.where = where_text(raw)
            if raw.get("model_type"):
                self.types.add(raw["model_type"])
            if view.state in DONE_FILE_STATES and raw.get("sha256") and not view.verification:
                view.verification = "sha256 ok"
            if view.state != "downloading":
                view.speed = 0.0
            fresh[view.key] = view
        self.files = fresh

    def stop_files(self) -> None:
        for f in self.files.values():
            f.speed = 0.0
            if f.state == "downloading":
                f.state = "pending"

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

    def add_sample(self, event: dict[str, Any], jobs: dict[str, JobView]) -> None:
        ts = float(event.get("ts", 0.0))
        self.samples.append(
            Sample(
                ts=ts,
                throughput=float(event.get("throughput", 0.0)),
                cpu=float(event.get("cpu_percent", 0.0)),
                memory=float(event.get("memory_percent", 0.0)),
                engine_cpu=float(event.get("engine_cpu_percent", 0.0)),
                engine_rss=int(event.get("engine_rss", 0)),
                connections=int(event.get("connections", 0)),
            )
        )
        for job in jobs.values():
            if job.state == "PROCESSING" or job.id in self.job_speeds:
                series = self.job_speeds.setdefault(job.id, deque(maxlen=HISTORY))
                series.append((ts, job.speed))
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
    finished: list[tuple[str, str]] = field(default_factory=list)
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

    def apply_message(self, message: dict[str, Any]) -> None:
        """One WebSocket message: a ``snapshot`` or a batch of ``events``."""
        kind = message.get("type")
        if kind == "snapshot":
            self._set_store_error(message.get("store_error"))
            self.apply_summaries(message.get("jobs", []))
            for detail in message.get("jobs", []):
                self.jobs[detail["id"]].apply_files(detail.get("files", []))
        elif kind == "events":
            for event in message.get("events", []):
                self.apply_event(event)

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

    def apply_event(self, event: dict[str, Any]) -> None:
        self.events_seen += 1
        handler = _HANDLERS.get(event.get("type", ""))
        if handler is not None:
            handler(self, event)

    # ------------------------------------------------------------ event handlers

    def _set_store_error(self, message: str | None) -> None:
        if message != self.store_error:
            self.store_error = message or None
            self._reordered = True

    def _on_save_failed(self, event: dict[str, Any]) -> None:
        self._set_store_error(None if event.get("recovered") else event.get("message"))

    def _job_for_key(self, key: str, job_id: str | None = None) -> JobView | None:
        return self.jobs.get(job_id or key.split(":", 1)[0])

    def _file(self, job: JobView, key: str, name: str = "") -> FileView:
        view = job.files.get(key)
        if view is None:
            view = job.files[key] = FileView(key=key, name=name or key.rsplit(":", 1)[-1])
        return view

    def _on_job_state(self, event: dict[str, Any]) -> None:
        job = self.jobs.get(event["job_id"])
        if job is None:
            job = self.jobs[event["job_id"]] = JobView(id=event["job_id"], name="…")
            self.order.append(job.id)
            self._reordered = True
        if event["new"] in FINISHED_STATES and event.get("old") not in FINISHED_STATES:
            self.finished.append((job.id, event["new"]))
        job.state = event["new"]
        if job.state != "PROCESSING":
            job.stop_files()
        self._dirty.add(job.id)

    def _on_file_started(self, event: dict[str, Any]) -> None:
        info = event["file"]
        job = self._job_for_key(info["key"], info.get("job_id"))
        if job is None:
            return
        view = self._file(job, info["key"], info.get("name", ""))
        job.done_bytes += int(event.get("resumed_bytes", 0)) - view.done
        view.done = int(event.get("resumed_bytes", 0))
        view.size = info.get("size") or view.size
        view.state = "downloading"
        if info.get("model_type"):
            job.types.add(info["model_type"])
        self._dirty.add(job.id)

    def _on_file_progress(self, event: dict[str, Any]) -> None:
        job = self._job_for_key(event["key"])
        if job is None:
            return
        view = self._file(job, event["key"])
        done = int(event["done"])
        job.done_bytes += done - view.done
        if not view.size and event.get("total"):  # first known now (a plain URL): count it
            job.total_bytes += int(event["total"])
        view.done, view.size = done, event.get("total") or view.size
        view.speed = float(event.get("speed", 0.0))
        view.connections = int(event.get("connections", 1))
        view.state = "downloading"
        self._dirty.add(job.id)

    def _on_file_completed(self, event: dict[str, Any]) -> None:
        info = event["file"]
        job = self._job_for_key(info["key"], info.get("job_id"))
        if job is None:
            return
        view = self._file(job, info["key"], info.get("name", ""))
        if view.state not in DONE_FILE_STATES:
            job.files_done += 1
        job.done_bytes += int(event["bytes"]) - view.done
        view.done, view.size, view.state, view.speed = (
            event["bytes"],
            event["bytes"],
            "completed",
            0,
        )
        view.connections = int(event.get("connections", view.connections))
        view.attempts = max(view.attempts, int(event.get("retries", 0)) + 1)
        view.verification = "sha256 ok" if event.get("sha256") else "size ok"
        view.error = ""
        self._dirty.add(job.id)

    def _on_file_failed(self, event: dict[str, Any]) -> None:
        info = event["file"]
        job = self._job_for_key(info["key"], info.get("job_id"))
        if job is None:
            return
        view = self._file(job, info["key"], info.get("name", ""))
        if view.state != "failed":
            job.files_failed += 1
        view.state, view.speed = "failed", 0.0
        view.attempts = int(event.get("attempts", view.attempts))
        view.error = f"{event.get('kind', '')}: {event.get('message', '')}"
        if event.get("kind") in ("hash_mismatch", "size_mismatch", "invalid_format"):
            view.verification = event["kind"].replace("_", " ")
        if event.get("kind") == "unsafe":
            view.scan = "dangerous"
        self._dirty.add(job.id)

    def _on_retry(self, event: dict[str, Any]) -> None:
        job = self._job_for_key(event["key"])
        if job is None:
            return
        view = self._file(job, event["key"])
        view.attempts = int(event.get("attempt", view.attempts))
        view.error = f"retry in {float(event.get('delay', 0)):.1f} s: {event.get('reason', '')}"
        self._dirty.add(job.id)

    def _on_scan(self, event: dict[str, Any]) -> None:
        job = self._job_for_key(event["key"])
        if job is None:
            return
        self._file(job, event["key"]).scan = event.get("verdict", "")
        self._dirty.add(job.id)

    def _on_metrics(self, event: dict[str, Any]) -> None:
        self.perf.add_sample(event, self.jobs)

    def _on_decision(self, event: dict[str, Any]) -> None:
        self.perf.decisions.appendleft(event)
        self.perf.dirty = True

    def _on_condition(self, event: dict[str, Any]) -> None:
        self.perf.condition = event.get("new")
        self.perf.dirty = True


_HANDLERS = {
    "state_save_failed": EngineState._on_save_failed,
    "job_state_changed": EngineState._on_job_state,
    "file_started": EngineState._on_file_started,
    "file_progress": EngineState._on_file_progress,
    "file_completed": EngineState._on_file_completed,
    "file_failed": EngineState._on_file_failed,
    "retry_scheduled": EngineState._on_retry,
    "security_scan_finished": EngineState._on_scan,
    "metrics_sample": EngineState._on_metrics,
    "optimizer_decision": EngineState._on_decision,
    "network_condition_changed": EngineState._on_condition,
}
