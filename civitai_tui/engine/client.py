"""A client of the engine's control API over its Unix socket (the CLI's and the TUI's).

Errors come back as :class:`CivitaiTuiError` with the engine's kind and message;
an engine that is not running gives ``FailureKind.ENGINE`` with what to do.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from civitai_tui.browse.records import BrowsePage, BrowseQuery, LibraryEntry, ModelDetail
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.session_owner import SessionOwner

BASE = "http://engine"
#: Seconds a Browse call may take beyond the read timeout (paced API calls, retries).
BROWSE_WAIT = 120.0
GOING_AWAY = aiohttp.WSCloseCode.GOING_AWAY


def _bool(flag: bool) -> str:
    return "1" if flag else "0"


class EngineStopped(CivitaiTuiError):
    """The engine closed the event stream because it is stopping (not a dropped link)."""

    def __init__(self) -> None:
        super().__init__(FailureKind.ENGINE, "engine stopped")


class EngineClient(SessionOwner):
    """Async methods mirroring the control API routes."""

    def __init__(self, socket_path: Path, *, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=timeout)

    def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=str(self.socket_path)), timeout=self._timeout
        )

    def _unavailable(self, exc: Exception) -> CivitaiTuiError:
        return CivitaiTuiError(
            FailureKind.ENGINE,
            f"the engine is not answering on {self.socket_path} ({type(exc).__name__}); "
            "start it with `civitai-tui engine` (queue commands start it for you)",
        )

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        wait: float | None = 0.0,
        params: list[tuple[str, str]] | None = None,
        raw_ok: bool = False,
    ) -> Any:
        """One request; ``wait`` is how long the engine may take on purpose (None: forever).

        ``raw_ok``: a successful answer's body is returned as bytes (images), not JSON.
        """
        assert self._session is not None, "use `async with EngineClient(...)`"
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self._timeout.sock_connect,
            sock_read=None if wait is None else (self._timeout.sock_read or 0) + wait,
        )
        try:
            async with self._session.request(
                method, BASE + path, json=body, params=params, timeout=timeout
            ) as resp:
                raw = await resp.read()
                if raw_ok and resp.status < 400:
                    return raw
                data = json.loads(raw)
        except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionError) as exc:
            raise self._unavailable(exc) from None
        except ValueError:
            raise CivitaiTuiError(
                FailureKind.ENGINE, "the engine sent a malformed answer"
            ) from None
        if resp.status >= 400:
            kind = data.get("error", "") if isinstance(data, dict) else ""
            message = data.get("message", "") if isinstance(data, dict) else str(data)
            try:
                failure = FailureKind(kind)
            except ValueError:
                failure = FailureKind.ENGINE
            raise CivitaiTuiError(failure, message or f"engine answered HTTP {resp.status}")
        return data

    async def status(self) -> dict[str, Any]:
        return await self._call("GET", "/v1/status")

    async def jobs(self, *, files: bool = False) -> list[dict[str, Any]]:
        """Every job's summary; with ``files``, each job's files too (as ``job`` gives)."""
        return (await self._call("GET", "/v1/jobs?files=1" if files else "/v1/jobs"))["jobs"]

    async def job(self, job_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/jobs/{job_id}")

    async def add(
        self,
        targets: list[str],
        *,
        priority: int = 0,
        options: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        body = {"targets": targets, "priority": priority, "options": options or {}, "name": name}
        return await self._call("POST", "/v1/jobs", body)

    async def preview(
        self, targets: list[str], options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return await self._call(
            "POST", "/v1/preview", {"targets": targets, "options": options or {}}
        )

    async def action(self, job_id: str, action: str) -> dict[str, Any]:
        """``pause``, ``resume``, ``cancel`` or ``retry`` one job."""
        return await self._call("POST", f"/v1/jobs/{job_id}/{action}")

    async def set_priority(self, job_id: str, priority: int) -> dict[str, Any]:
        return await self._call("POST", f"/v1/jobs/{job_id}/priority", {"priority": priority})

    async def set_max_speed(self, job_id: str, rate: int) -> dict[str, Any]:
        """A job's own speed limit (bytes/s; 0: none), applied to its running files."""
        return await self._call("POST", f"/v1/jobs/{job_id}/max-speed", {"max_speed": rate})

    async def queue_action(self, action: str) -> dict[str, Any]:
        """``pause-all``, ``resume-all`` or ``remove-finished``."""
        return await self._call("POST", f"/v1/queue/{action}")

    async def wait(self, job_ids: list[str] | None, timeout: float | None) -> dict[str, Any]:
        body = {"jobs": job_ids, "timeout": timeout}
        return await self._call("POST", "/v1/wait", body, wait=timeout)

    async def analytics(self, days: int) -> dict[str, Any]:
        return await self._call("GET", f"/v1/analytics?days={days}")

    async def write_report(self, output: str, fmt: str, days: int) -> dict[str, Any]:
        body = {"output": output, "format": fmt, "days": days}
        return await self._call("POST", "/v1/reports", body, wait=None)

    async def config(self) -> dict[str, Any]:
        return await self._call("GET", "/v1/config")

    async def set_config(self, key: str, value: Any) -> dict[str, Any]:
        return await self._call("PUT", f"/v1/config/{key}", {"value": value})

    async def performance(self) -> dict[str, Any]:
        """The optimizer's state: mode, hosts, chunk size, network, decisions, advice."""
        return await self._call("GET", "/v1/performance")

    async def set_mode(self, mode: str) -> dict[str, Any]:
        """Switch the optimizer's mode (persisted as ``performance.mode``)."""
        return await self._call("PUT", "/v1/performance/mode", {"mode": mode})

    async def hand_over_token(self, token: str) -> dict[str, Any]:
        """Give the engine an API token it lacks (the body of a Unix-socket request only)."""
        return await self._call("POST", "/v1/token", {"token": token})

    async def forget_token(self) -> dict[str, Any]:
        """Make the engine drop a token a client handed over."""
        return await self._call("DELETE", "/v1/token")

    async def browse_search(self, query: BrowseQuery, refresh: bool = False) -> BrowsePage:
        """One page of CivitAI search results (``query.cursor``: the page after it)."""
        params = [("query", query.query), ("sort", query.sort), ("period", query.period)]
        params += [("types", t) for t in query.types]
        params += [("base_models", b) for b in query.base_models]
        params += [("nsfw", _bool(query.nsfw)), ("limit", str(query.limit))]
        params += [("cursor", query.cursor)] if query.cursor else []
        params += [("refresh", _bool(refresh))]
        data = await self._call("GET", "/v1/browse/models", params=params, wait=BROWSE_WAIT)
        return BrowsePage.from_dict(data)

    async def browse_model(self, model_id: int, refresh: bool = False) -> ModelDetail:
        """A model's details: versions newest first, files, licence, plain-text description."""
        params = [("refresh", _bool(refresh))]
        data = await self._call(
            "GET", f"/v1/browse/models/{int(model_id)}", params=params, wait=BROWSE_WAIT
        )
        return ModelDetail.from_dict(data)

    async def browse_image(self, url: str, width: int) -> bytes:
        """A preview image's bytes (PNG, JPEG, WebP or GIF) at ``width`` pixels."""
        params = [("url", url), ("width", str(int(width)))]
        return await self._call(
            "GET", "/v1/browse/image", params=params, wait=BROWSE_WAIT, raw_ok=True
        )

    async def library(
        self, dest: list[str] | None = None, refresh: bool = False
    ) -> list[LibraryEntry]:
        """Every model file under ``dest`` (default ``bulk.dest``) with its update flag.

        The first check of a big library hashes its files: no time limit.
        """
        params = [("dest", d) for d in dest or []] + [("refresh", _bool(refresh))]
        data = await self._call("GET", "/v1/library", params=params, wait=None)
        return [LibraryEntry.from_dict(e) for e in data["entries"]]

    async def queue_updates(self, version_ids: list[int], dest: str | None) -> list[str]:
        """Queue these newer versions (beside the files they update, or in ``dest``)."""
        body = {"version_ids": version_ids, "dest": dest}
        return (await self._call("POST", "/v1/library/updates", body))["jobs"]

    async def shutdown(self) -> None:
        await self._call("POST", "/v1/shutdown")

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The snapshot, then batches of events, as decoded JSON messages.

        Ends with :class:`EngineStopped` when the engine closes the stream because
        it stops; a stream that merely ends (engine killed) just ends.
        """
        assert self._session is not None, "use `async with EngineClient(...)`"
        try:
            async with self._session.ws_connect(BASE + "/v1/events", heartbeat=20) as ws:
                while True:
                    msg = await ws.receive()
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        yield msg.json()
                        continue
                    # The close frame's own code: the reply to it may fail on a closed link.
                    if msg.type is aiohttp.WSMsgType.CLOSE and msg.data == GOING_AWAY:
                        raise EngineStopped()
                    break
        except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionError) as exc:
            raise self._unavailable(exc) from None
