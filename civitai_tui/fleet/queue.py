"""The fleet's queue on the server: jobs, their files, claims under lease and fencing token.

:class:`FleetQueue` is a thin typed face over the Lua scripts (``fleet/scripts.py``): it
holds no queue of its own, so every engine and every CLI sees one queue. A file's
``request`` is an opaque JSON text (what the engine that claims it needs to fetch it).

Claim: the best queued file (priority, then arrival), leased to one engine for
``lease`` seconds with a fencing token (a number that only grows). Renew: the owner
extends its lease and stores its checkpoint; the answer carries the job's state, so a
pause or cancel reaches the engine within one renewal. Finish: complete, fail or
release, checked against the token: a fenced-out engine's word changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from civitai_tui.fleet import scripts

PREFIX = "ctf:"
#: Files sent to the server in one ADD call (a 10,000-file job goes in chunks).
ADD_CHUNK = 500
#: Jobs read by one LIST script (``ls``): the server answers others between chunks.
LIST_CHUNK = 500
JOB_ACTIONS = ("pause", "resume", "cancel", "retry", "priority")


@dataclass(frozen=True)
class Claim:
    """A file this engine now holds: its id, fencing token, request and the last checkpoint."""

    file_id: str
    token: str
    request: str
    job_id: str
    checkpoint: dict[str, Any] = field(default_factory=dict)
    #: The engine that held it before (a lapsed lease), or "".
    previous_engine: str = ""


@dataclass(frozen=True)
class FleetFile:
    """One file as the server has it (``ls``)."""

    id: str
    state: str
    engine: str | None
    request: dict[str, Any]
    attempts: int
    detail: dict[str, Any]
    checkpoint: dict[str, Any]


@dataclass(frozen=True)
class FleetJob:
    """One job as the server has it."""

    id: str
    name: str
    state: str
    priority: int
    files_total: int
    files_left: int
    files_failed: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    fields: dict[str, str]
    files: tuple[FleetFile, ...] = ()

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "failed", "cancelled")


class FleetQueue:
    """The fleet's jobs and files on one Valkey/Redis server (key prefix ``ctf:``)."""

    def __init__(self, client: aioredis.Redis, prefix: str = PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self._add = client.register_script(scripts.full(scripts.ADD))
        self._claim = client.register_script(scripts.full(scripts.CLAIM))
        self._renew = client.register_script(scripts.full(scripts.RENEW))
        self._finish = client.register_script(scripts.full(scripts.FINISH))
        self._control = client.register_script(scripts.full(scripts.CONTROL))
        self._lapse = client.register_script(scripts.full(scripts.LAPSE))
        self._list = client.register_script(scripts.full(scripts.LIST))

    # ------------------------------------------------------------------ writing

    async def add_job(
        self,
        requests: Sequence[str],
        *,
        name: str,
        priority: int = 0,
        job_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Queue a job of files (each a request JSON text); returns the job's id."""
        job_id = job_id or uuid.uuid4().hex[:12]
        fields = {**(extra or {}), "name": name, "priority": priority}
        chunks = [requests[i : i + ADD_CHUNK] for i in range(0, len(requests), ADD_CHUNK)]
        for chunk in chunks or [()]:
            pairs: list[str] = []
            for request in chunk:
                pairs += [f"{job_id}:{uuid.uuid4().hex[:12]}", request]
            await self._add(args=[self.prefix, job_id, json.dumps(fields), *pairs])
        return job_id

    async def control(self, job_id: str, action: str, value: int | None = None) -> str | None:
        """Pause, resume, cancel, retry a job or change its priority; its new state (None: no
        such job)."""
        if action not in JOB_ACTIONS:
            raise ValueError(f"unknown job action {action!r}")
        args = [self.prefix, job_id, action, "" if value is None else str(value)]
        state = await self._control(args=args)
        return state or None

    # ------------------------------------------------------------------ working

    async def claim(self, engine: str, lease: float) -> Claim | None:
        """The best queued file, now leased to ``engine``; None when nothing waits."""
        got = await self._claim(args=[self.prefix, engine, _ms(lease)])
        if not got:
            return None
        file_id, token, request, checkpoint, job_id, previous = got
        return Claim(file_id, token, request, job_id, _json(checkpoint), previous)

    async def renew(
        self, claim: Claim, lease: float, checkpoint: dict[str, Any] | None = None
    ) -> str:
        """Extend the lease and keep ``checkpoint``: 'run', 'paused', 'cancelled' or 'lost'."""
        ckpt = json.dumps(checkpoint) if checkpoint is not None else ""
        args = [self.prefix, claim.file_id, claim.token, _ms(lease), ckpt]
        return str(await self._renew(args=args))

    async def finish(self, claim: Claim, outcome: str, detail: dict[str, Any]) -> bool:
        """End the claim ('completed', 'failed' or 'released'); False: fenced out (another
        engine holds the file now, nothing was changed)."""
        args = [self.prefix, claim.file_id, claim.token, outcome, json.dumps(detail)]
        return await self._finish(args=args) == "ok"

    async def held(self, engine: str) -> list[Claim]:
        """The files ``engine`` still holds under a live lease (an engine restarting within
        its lease takes them up again with their tokens)."""
        await self.lapse()
        ids = sorted(await self.client.smembers(self.prefix + "held:" + engine))
        claims = []
        for file_id in ids:
            data = await self.client.hgetall(self.prefix + "file:" + file_id)
            if data.get("engine") == engine and data.get("state") == "running":
                claims.append(
                    Claim(
                        file_id,
                        data["token"],
                        data["request"],
                        data["job"],
                        _json(data.get("checkpoint", "")),
                        data.get("last_engine", ""),
                    )
                )
        return claims

    async def lapse(self) -> int:
        """Return lapsed leases to the queue now; how many there were."""
        return int(await self._lapse(args=[self.prefix]))

    # ------------------------------------------------------------------ reading

    async def job_ids(self) -> list[str]:
        return list(await self.client.zrange(self.prefix + "jobs", 0, -1))

    async def jobs(
        self, *, files: bool = False, ids: Iterable[str] | None = None
    ) -> list[FleetJob]:
        """Every job (in arrival order), or those of ``ids``, with their files when asked."""
        ids = list(ids) if ids is not None else await self.job_ids()
        jobs = []
        for start in range(0, len(ids), LIST_CHUNK):  # short scripts: claims go between
            texts = await self._list(args=[self.prefix, *ids[start : start + LIST_CHUNK]])
            for job_id, text in zip(ids[start : start + LIST_CHUNK], texts, strict=True):
                if text:
                    data = json.loads(text)
                    found = tuple(_file(row) for row in data["files"]) if files else ()
                    jobs.append(_job(job_id, data["job"], found))
        return jobs

    async def resolve(self, prefix: str) -> str | None:
        """The job id that is ``prefix`` or the only one starting with it (as git takes
        commit prefixes); None when none or several do."""
        ids = await self.job_ids()
        if prefix in ids:
            return prefix
        found = [i for i in ids if prefix and i.startswith(prefix)]
        return found[0] if len(found) == 1 else None

    async def queued(self) -> int:
        """Files waiting for an engine."""
        return int(await self.client.zcard(self.prefix + "ready"))

    async def leased(self) -> int:
        """Files held by an engine."""
        return int(await self.client.zcard(self.prefix + "leases"))


def _file(row: list[str]) -> FleetFile:
    file_id, state, engine, request, attempts, detail, checkpoint = row
    return FleetFile(
        id=file_id,
        state=state,
        engine=engine or None,
        request=_json(request),
        attempts=int(attempts),
        detail=_json(detail),
        checkpoint=_json(checkpoint),
    )


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _json(text: str) -> dict[str, Any]:
    return json.loads(text) if text else {}


def _float(text: str | None) -> float | None:
    return float(text) if text else None


def _job(job_id: str, data: dict[str, str], files: tuple[FleetFile, ...]) -> FleetJob:
    return FleetJob(
        id=job_id,
        name=data.get("name", ""),
        state=data.get("state", ""),
        priority=int(data.get("priority", 0)),
        files_total=int(data.get("files", 0)),
        files_left=int(data.get("left", 0)),
        files_failed=int(data.get("failed", 0)),
        created_at=float(data.get("created_at", 0)),
        started_at=_float(data.get("started_at")),
        finished_at=_float(data.get("finished_at")),
        fields=data,
        files=files,
    )
