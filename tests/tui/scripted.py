"""A scripted engine transport for snapshot tests: the same JSON the engine sends, fixed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC: the fixed clock
GIB = 1024**3
#: What the engine says of the PENDING job (``bulk.waiting``).
WAITING = "all 2 batch slot(s) busy (bulk.concurrent_batches); 4 job(s) ahead in the queue"


def _job(
    n: int, name: str, state: str, prio: int, files: int, done: int, total: int
) -> dict[str, Any]:
    job_id = f"job{n:09d}"
    return {
        "id": job_id,
        "name": name,
        "state": state,
        "priority": prio,
        "targets": [f"model:{4000 + n}"],
        "files_total": files,
        "files_done": done,
        "files_failed": 1 if state == "FAILED" else 0,
        "total_bytes": total,
        "done_bytes": total * done // max(files, 1),
        "created_at": T0,
        "started_at": T0,
        "finished_at": None,
        "error": "not_found: model 4004 is gone" if state == "FAILED" else None,
        "waiting": WAITING if state == "PENDING" else None,
        "files": [
            {
                "key": f"{job_id}:civitai:{n}:{i}",
                "name": f"{name.lower().replace(' ', '_')}_{i}.safetensors",
                "size": total // max(files, 1),
                "done": total // max(files, 1) if i < done else 0,
                "state": "completed" if i < done else "pending",
                "attempts": 1 if i < done else 0,
                "last_status": 206,
                "error_kind": None,
                "error": None,
                "path": f"/models/{name.lower().replace(' ', '_')}_{i}.safetensors"
                if i < done
                else None,
                "reason": None if i < done else "not fetched yet",
                "content_from": "download" if i < done else None,
                "content_source": None,
                "warning": None,
                "sha256": "AB" * 32 if i < done else None,
                "model_type": "LORA" if n % 2 else "Checkpoint",
            }
            for i in range(files)
        ],
    }


JOBS = [
    _job(1, "SDXL Base Checkpoint", "PROCESSING", 5, 2, 1, 13 * GIB // 2),
    _job(2, "Anime Lineart LoRA", "PROCESSING", 0, 1, 0, 144 * 1024**2),
    _job(3, "user:studio-ghibli-fan", "PAUSED", 0, 12, 4, 2 * GIB),
    _job(4, "Archived model", "FAILED", 0, 1, 0, 0),
    _job(5, "tag:landscape (top 20)", "PENDING", -1, 20, 0, 3 * GIB),
    _job(6, "Detail Tweaker", "COMPLETED", 0, 1, 1, 37 * 1024**2),
]


def _events() -> list[dict[str, Any]]:
    first = JOBS[0]["files"][1]
    second = JOBS[1]["files"][0]
    out: list[dict[str, Any]] = [
        {
            "type": "file_progress",
            "ts": T0,
            "key": first["key"],
            "done": first["size"] // 3,
            "total": first["size"],
            "speed": 48 * 1024**2,
            "connections": 16,
        },
        {
            "type": "file_progress",
            "ts": T0,
            "key": second["key"],
            "done": second["size"] // 2,
            "total": second["size"],
            "speed": 9 * 1024**2,
            "connections": 4,
        },
        {
            "type": "retry_scheduled",
            "ts": T0,
            "key": second["key"],
            "attempt": 2,
            "delay": 1.5,
            "reason": "503 from storage",
            "status": 503,
        },
        {
            "type": "network_condition_changed",
            "ts": T0,
            "old": None,
            "new": "good",
            "mean_speed": 5e7,
        },
    ]
    for i in range(120):
        out.append(
            {
                "type": "metrics_sample",
                "ts": T0 + i,
                "cpu_percent": 20 + (i * 7) % 30,
                "memory_percent": 41 + (i % 10) / 2,
                "engine_cpu_percent": 8 + (i * 3) % 9,
                "engine_rss": (90 + i % 7) * 1024**2,
                "throughput": (40 + (i * 13) % 25) * 1024**2,
                "connections": 16 + (i // 20) % 4,
            }
        )
    for setting, old, new, reason in (
        ("connections", 8, 16, "network good and CPU 22% < 75%: more connections"),
        ("chunk_size", 262144, 1048576, "throughput up 30% with larger reads"),
        ("connections", 16, 12, "storage answered 503: shrink for that host"),
    ):
        out.append(
            {
                "type": "optimizer_decision",
                "ts": T0 + 60,
                "setting": setting,
                "old": old,
                "new": new,
                "reason": reason,
                "host": "storage",
            }
        )
    return out


REPORT: dict[str, Any] = {
    "period": {"since": T0 - 7 * 86400, "until": T0, "utc_offset": 0},
    "generated_at": T0,
    "totals": {
        "started": 140,
        "completed": 131,
        "failed": 6,
        "success_rate": 131 / 137,
        "bytes": 412 * GIB,
        "fetched_bytes": 400 * GIB,
        "total_duration": 9000.0,
        "mean_duration": 68.0,
        "retries": 22,
        "scans": 40,
        "unsafe_scans": 1,
    },
    "speed": {"count": 131, "mean": 46e6, "median": 44e6, "p95": 88e6, "min": 1e6, "max": 95e6},
    "hourly": [max(0, 12 - abs(h - 21)) for h in range(24)],
    "daily": [
        {
            "date": f"2025-12-{25 + d}",
            "completed": 18 + d,
            "failed": d % 3,
            "bytes": GIB,
            "success_rate": (18 + d) / (18 + d + d % 3),
        }
        for d in range(7)
    ],
    "trends": [
        {
            "metric": "mean speed",
            "first_half": 40e6,
            "second_half": 52e6,
            "change_pct": 30.0,
            "direction": "up",
            "significance": "high",
        },
        {
            "metric": "success rate",
            "first_half": 0.95,
            "second_half": 0.96,
            "change_pct": 1.0,
            "direction": "flat",
            "significance": "low",
        },
    ],
    "patterns": [
        {
            "kind": "peak_hours",
            "title": "Most downloads finish 19:00-23:00",
            "detail": "62% of downloads in 4 evening hours",
            "confidence": 0.8,
            "recommendations": ["queue large checkpoints overnight"],
        },
    ],
    "recommendations": [
        "queue large checkpoints overnight",
        "Lower concurrency: many retries in a minute usually mean rate limits.",
    ],
    "notes": ["No download completed on Sunday: its speeds need at least one."],
}


class ScriptedEngine:
    """Answers like the control API, from the fixed data above; never changes.

    Job actions are only recorded in ``calls`` (tests of key bindings read them).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def queue_action(self, action: str) -> dict[str, Any]:
        self.calls.append((action,))
        return {"jobs": []}

    async def action(self, job_id: str, action: str) -> dict[str, Any]:
        self.calls.append((action, job_id))
        return await self.job(job_id)

    async def jobs(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in j.items() if k != "files"} for j in JOBS]

    async def job(self, job_id: str) -> dict[str, Any]:
        return next(j for j in JOBS if j["id"] == job_id)

    async def analytics(self, days: int) -> dict[str, Any]:
        return REPORT

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "snapshot", "jobs": JOBS}
        yield {"type": "events", "events": _events()}
        await asyncio.Event().wait()  # the stream stays open, quiet

    async def set_config(self, key: str, value: Any) -> dict[str, Any]:
        return {"key": key, "value": value}
