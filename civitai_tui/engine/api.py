"""The control API: HTTP + JSON routes and a WebSocket event stream over the engine.

Every request body is validated; a bad one gets a 4xx with ``{"error": kind,
"message": ...}``, never a crash. ``GET /v1/events`` is a WebSocket that sends
a ``snapshot`` (every job) first, then each bus event as JSON, so a client that
reconnects starts from a complete picture.

Routes (all JSON)::

    GET  /v1/status                      version, pid, uptime, state dir, token yes/no (never
                                         the token), jobs by state, attached clients
    GET  /v1/jobs[?files=1]              job summaries in queue order (with their files)
    POST /v1/jobs                        {"targets": [...], "priority": 0, "options": {...}}
    POST /v1/preview                     the same body: what a job would download
    GET  /v1/jobs/{id}                   one job with its files
    POST /v1/jobs/{id}/{action}          pause | resume | cancel | retry
    POST /v1/jobs/{id}/priority          {"priority": N}
    POST /v1/jobs/{id}/max-speed         {"max_speed": bytes/s, 0 = none}
    POST /v1/queue/{action}              pause-all | resume-all | remove-finished
    POST /v1/wait                        {"jobs": [...] | null, "timeout": S}
                                         -> {"finished", "ok", "stopped" when the engine stops}
    GET  /v1/analytics?days=N            the analyzer's report for the last N days
    POST /v1/reports                     {"format": "html|json|pdf", "days": N, "output": PATH}
    GET  /v1/config                      every key and value
    PUT  /v1/config/{key}                {"value": V}
    GET  /v1/performance                 optimizer: mode, hosts, chunk size, network, decisions
    PUT  /v1/performance/mode            {"mode": "speed|efficiency|minimal|adaptive"}
    POST /v1/token                       {"token": T}: a client's API token (Unix socket only)
    DELETE /v1/token                     forget a handed-over token
    POST /v1/shutdown                    stop the engine gracefully
    GET  /v1/browse/models?query=&types=&base_models=&sort=&period=&nsfw=&cursor=&limit=&refresh=
                                         one page of search results (BrowsePage)
    GET  /v1/browse/models/{id}[?refresh=1]  a model's details (ModelDetail)
    GET  /v1/browse/image?url=U&width=N  a preview image's bytes (only from CivitAI's image hosts)
    GET  /v1/library?dest=D[&dest=D2][&refresh=1]  {"entries": [LibraryEntry...]}
    POST /v1/library/updates             {"version_ids": [...], "dest": D | null} -> {"jobs": [...]}
    GET  /v1/events                      WebSocket
    GET  /v1/openapi.json                the OpenAPI 3 document of these routes

``openapi.json`` beside this module is that document; the test suite fuzzes a
real engine from it (schemathesis), so keep it in step with the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from civitai_tui import __version__
from civitai_tui.browse.records import BrowseQuery
from civitai_tui.browse.updates import update_destinations
from civitai_tui.bulk.jobs import BulkDownloadJob, JobOptions
from civitai_tui.config import option
from civitai_tui.engine.remote import Listen, check_under_roots, parse_roots, token_matches
from civitai_tui.errors import CivitaiTuiError, FailureKind

if TYPE_CHECKING:
    from civitai_tui.engine.core import Engine

log = logging.getLogger(__name__)

ENGINE_KEY: web.AppKey[Engine] = web.AppKey("engine")
#: Set on requests that arrived over the TCP listener (see :mod:`civitai_tui.engine.remote`).
OVER_TCP: web.RequestKey[bool] = web.RequestKey("over_tcp", bool)
#: Config keys that widen what a TCP client may write: changed only over the Unix socket.
LOCAL_ONLY_KEYS = ("engine.allowed_roots",)
STATUS_FOR_KIND = {
    FailureKind.FORBIDDEN: 403,
    FailureKind.UNKNOWN_JOB: 404,
    FailureKind.INVALID_STATE: 409,
    FailureKind.BAD_TARGET: 400,
    FailureKind.BAD_CONFIG: 400,
}
#: The close reason of the event stream when the engine stops (clients show it).
STOPPED_MESSAGE = "engine stopped"
CLOSE_SECONDS = 2.0
JOB_ACTIONS = ("pause", "resume", "cancel", "retry")
OPENAPI = Path(__file__).with_name("openapi.json")
QUEUE_ACTIONS = ("pause-all", "resume-all", "remove-finished")


class BadRequest(CivitaiTuiError):
    def __init__(self, message: str) -> None:
        super().__init__(FailureKind.BAD_TARGET, message)


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": kind, "message": message}, status=status)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn our errors into 4xx JSON and surprises into a logged 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, "http", exc.text or exc.reason)
    except CivitaiTuiError as err:
        return _error(STATUS_FOR_KIND.get(err.kind, 422), str(err.kind), err.message)
    except Exception:
        log.exception("control API: %s %s failed", request.method, request.path)
        return _error(500, "internal", "the engine hit an unexpected error; see the engine log")


def _over_tcp(request: web.Request) -> bool:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    return sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)


def remote_middleware(token: str, listen: Listen) -> Callable[..., Awaitable[web.StreamResponse]]:
    """For the TCP listener: token, Host and Origin checks; marks the request as remote."""

    @web.middleware
    async def check(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not _over_tcp(request):
            return await handler(request)
        if not listen.host_allowed(request.headers.get("Host", "")):
            return _error(
                403, "bad_host", "the Host header must name this listener (an IP or localhost)"
            )
        if "Origin" in request.headers:
            return _error(403, "browser_origin", "browsers may not use the control API")
        if not token_matches(request.headers.get("Authorization", ""), token):
            return _error(401, "auth_required", "this control API needs its token")
        request[OVER_TCP] = True
        return await handler(request)

    return check


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def _targets(data: dict[str, Any]) -> list[str]:
    targets = data.get("targets")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise BadRequest("'targets' must be a non-empty list of strings")
    return targets


def _int(data: dict[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{key}' must be an integer")
    return value


def _options(data: dict[str, Any]) -> JobOptions:
    raw = data.get("options", {})
    if not isinstance(raw, dict):
        raise BadRequest("'options' must be an object")
    unknown = set(raw) - set(JobOptions.__dataclass_fields__)
    if unknown:
        known = ", ".join(JobOptions.__dataclass_fields__)
        raise BadRequest(f"unknown option(s) {', '.join(sorted(unknown))}; known: {known}")
    try:
        return JobOptions.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"bad options: {exc}") from None


def _days(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 3650:
        raise BadRequest("'days' must be a whole number from 1 to 3650")
    return int(raw)


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "0").lower()
    if value not in ("0", "1", "true", "false"):
        raise BadRequest(f"'{name}' must be 1, 0, true or false")
    return value in ("1", "true")


def _browse_query(request: web.Request) -> BrowseQuery:
    q = request.query
    raw: dict[str, Any] = {
        "query": q.get("query", ""),
        "types": q.getall("types", []),
        "base_models": q.getall("base_models", []),
        "nsfw": _flag(request, "nsfw"),
    }
    for key in ("sort", "period", "cursor"):
        if q.get(key):
            raw[key] = q[key]
    if "limit" in q:
        if not q["limit"].isdigit() or not 1 <= int(q["limit"]) <= 100:
            raise BadRequest("'limit' must be a whole number from 1 to 100")
        raw["limit"] = int(q["limit"])
    return BrowseQuery.from_dict(raw)


def _folder(dest: str) -> Path:
    """A destination a client named: absolute (the engine runs in a folder of its own)."""
    path = Path(dest).expanduser()
    if "\0" in dest or not path.is_absolute():
        raise BadRequest(f"the destination must be an absolute folder path, not {dest!r:.80}")
    return path


def job_detail(job: BulkDownloadJob) -> dict[str, Any]:
    """A job summary plus its files (each with its path, or why it has none)."""
    return {**job.summary(), "files": [f.view() for f in job.files]}


class ControlAPI:
    """The route handlers, bound to one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.started = time.time()
        self._streams: set[web.WebSocketResponse] = set()
        self._waiters = 0

    @property
    def manager(self):  # type: ignore[no-untyped-def]
        return self.engine.manager

    def _guard_path(self, request: web.Request, path: str, what: str) -> None:
        """Over TCP, refuse a path outside ``engine.allowed_roots``."""
        if request.get(OVER_TCP):
            config = self.engine.config
            roots = parse_roots(config.get("engine.allowed_roots"), config.get("bulk.dest"))
            check_under_roots(path, roots, what)

    def _job_options(self, request: web.Request, data: dict[str, Any]) -> JobOptions:
        options = _options(data)
        self._guard_path(request, options.dest, "the destination")
        return options

    async def status(self, _: web.Request) -> web.Response:
        token_source = self.engine.credentials.current()[1]
        limits = self.engine.fleet_limits
        jobs = self.manager.jobs()
        counts: dict[str, int] = {}
        for job in jobs:
            counts[str(job.state)] = counts.get(str(job.state), 0) + 1
        return web.json_response(
            {
                "version": __version__,
                "pid": os.getpid(),
                "uptime": time.time() - self.started,
                "state_dir": str(self.engine.state_dir),
                # Whether a token is loaded and from where: never the token itself.
                "token": token_source is not None,
                "token_source": token_source,
                "jobs": counts,
                "network": self.engine.network.describe(),
                # The fleet server (credentials masked), or None for a lone engine.
                "fleet": self.engine.config.shown()["fleet.url"] or None,
                # Shared or degraded limits (docs/fleet-limits.md), None for a lone engine.
                "fleet_limits": limits.snapshot() if limits is not None else None,
                # This engine's fleet work: name, files held, why the server is unreachable.
                "fleet_engine": (
                    self.engine.fleet_worker.status() if self.engine.fleet_worker else None
                ),
                "clients": {"waiting": self._waiters, "streams": len(self._streams)},
                # Why writes to state.db fail, while they do (None: everything is saved).
                "store_error": self.manager.store_error,
            }
        )

    async def list_jobs(self, request: web.Request) -> web.Response:
        view = job_detail if request.query.get("files") == "1" else BulkDownloadJob.summary
        return web.json_response({"jobs": [view(j) for j in self.manager.jobs()]})

    async def add_job(self, request: web.Request) -> web.Response:
        data = await _body(request)
        targets, priority = _targets(data), _int(data, "priority", 0)
        job = await self.manager.add_job(
            targets,
            priority=priority,
            options=self._job_options(request, data),
            name=data.get("name") if isinstance(data.get("name"), str) else None,
        )
        return web.json_response(job.summary(), status=201)

    async def preview(self, request: web.Request) -> web.Response:
        data = await _body(request)
        targets = _targets(data)
        return web.json_response(
            await self.manager.preview(targets, self._job_options(request, data))
        )

    async def get_job(self, request: web.Request) -> web.Response:
        job = self.manager.get(request.match_info["id"])
        self.manager.explain_waiting()
        return web.json_response(job_detail(job))

    async def job_action(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in JOB_ACTIONS:
            raise web.HTTPNotFound(text=f"unknown action {action!r}")
        job = await getattr(self.manager, action)(request.match_info["id"])
        return web.json_response(job.summary())

    async def priority(self, request: web.Request) -> web.Response:
        data = await _body(request)
        if "priority" not in data:
            raise BadRequest("'priority' is required")
        job = await self.manager.set_priority(request.match_info["id"], _int(data, "priority", 0))
        return web.json_response(job.summary())

    async def max_speed(self, request: web.Request) -> web.Response:
        data = await _body(request)
        if "max_speed" not in data:
            raise BadRequest("'max_speed' is required (bytes/s, 0 for none)")
        rate = _int(data, "max_speed", 0)
        if rate < 0:
            raise BadRequest("'max_speed' cannot be negative")
        job = await self.manager.set_max_speed(request.match_info["id"], rate)
        return web.json_response(job.summary())

    async def queue_action(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in QUEUE_ACTIONS:
            raise web.HTTPNotFound(text=f"unknown action {action!r}")
        if action == "remove-finished":
            return web.json_response({"removed": await self.manager.remove_finished()})
        changed = await (
            self.manager.pause_all() if action == "pause-all" else self.manager.resume_all()
        )
        return web.json_response({"changed": changed})

    async def wait(self, request: web.Request) -> web.Response:
        data = await _body(request)
        jobs = data.get("jobs")
        if jobs is not None and (
            not isinstance(jobs, list) or not all(isinstance(j, str) for j in jobs)
        ):
            raise BadRequest("'jobs' must be a list of job ids or null")
        timeout = data.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float)
        ):
            raise BadRequest("'timeout' must be a number of seconds or null")
        # A stopping engine answers at once, so ``engine stop`` never waits on a waiter.
        waiting = asyncio.ensure_future(self.manager.wait(jobs, timeout))
        stopping = asyncio.ensure_future(self.engine.wait_stopped())
        self._waiters += 1
        try:
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waiters -= 1
            stopping.cancel()
        if not waiting.done():
            waiting.cancel()
            return web.json_response({"finished": False, "ok": False, "stopped": True})
        try:
            ok = waiting.result()
        except TimeoutError:
            return web.json_response({"finished": False, "ok": False})
        return web.json_response({"finished": True, "ok": ok})

    async def analytics(self, request: web.Request) -> web.Response:
        days = _days(request.query.get("days", "7"))
        report = await asyncio.to_thread(self.engine.analyze, days)
        return web.json_response(report.to_dict())

    async def write_report(self, request: web.Request) -> web.Response:
        data = await _body(request)
        fmt = data.get("format", "html")
        output = data.get("output")
        if not isinstance(fmt, str) or not isinstance(output, str) or not output:
            raise BadRequest("'format' and 'output' (a file path) are required")
        days = _days(str(data.get("days", 30)))
        self._guard_path(request, output, "the report file")
        path = await asyncio.to_thread(self.engine.write_report, Path(output), fmt, days)
        return web.json_response({"path": str(path), "format": fmt, "days": days})

    async def get_config(self, _: web.Request) -> web.Response:
        return web.json_response(self.engine.config.shown())

    async def set_config(self, request: web.Request) -> web.Response:
        data = await _body(request)
        if "value" not in data:
            raise BadRequest("'value' is required")
        if set(data) != {"value"}:
            unknown = ", ".join(sorted(set(data) - {"value"}))
            raise BadRequest(f'unknown field(s) {unknown}; the body is {{"value": V}}')
        key = request.match_info["key"]
        if request.get(OVER_TCP):
            if key in LOCAL_ONLY_KEYS:
                raise CivitaiTuiError(
                    FailureKind.FORBIDDEN, f"{key} can only be changed on the engine's machine"
                )
            if key == "bulk.dest":
                self._guard_path(request, option(key).coerce(data["value"]), "bulk.dest")
        value = self.engine.config.set(key, data["value"])
        return web.json_response({"key": key, "value": option(key).shown(value)})

    async def performance(self, _: web.Request) -> web.Response:
        return web.json_response(self.engine.optimizer.snapshot())

    async def set_mode(self, request: web.Request) -> web.Response:
        data = await _body(request)
        mode = data.get("mode")
        if not isinstance(mode, str):
            raise BadRequest("'mode' is required: speed, efficiency, minimal or adaptive")
        value = self.engine.config.set("performance.mode", mode)
        return web.json_response({"mode": value})

    async def browse_search(self, request: web.Request) -> web.Response:
        page = await self.engine.browser.search(
            _browse_query(request), refresh=_flag(request, "refresh")
        )
        return web.json_response(page.to_dict())

    async def browse_model(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        if not raw.isdigit() or not 1 <= int(raw) <= 2_147_483_647:
            raise BadRequest("the model id must be a whole number from 1 to 2147483647")
        detail = await self.engine.browser.model(int(raw), refresh=_flag(request, "refresh"))
        return web.json_response(detail.to_dict())

    async def browse_image(self, request: web.Request) -> web.Response:
        url, width = request.query.get("url", ""), request.query.get("width", "")
        if not url or not width.isdigit():
            raise BadRequest("'url' and 'width' (pixels) are required")
        image = await self.engine.browser.image(url, int(width))
        return web.Response(
            body=image.data,
            content_type=image.content_type,
            headers={"Cache-Control": "private, max-age=3600"},
        )

    async def library(self, request: web.Request) -> web.Response:
        dests = request.query.getall("dest", [])
        configured = self.engine.config.get("bulk.dest")
        if not dests and configured and not Path(configured).expanduser().is_absolute():
            raise BadRequest(
                f"bulk.dest ({configured!r:.80}) is relative, and the engine does not know your "
                "folder: set it to an absolute path (config set bulk.dest …) or give a destination"
            )
        roots = []
        for dest in filter(None, dests or [configured]):
            roots.append(_folder(dest))
            self._guard_path(request, dest, "the destination")
        entries = await self.engine.browser.library(roots, refresh=_flag(request, "refresh"))
        return web.json_response({"entries": [e.to_dict() for e in entries]})

    async def queue_updates(self, request: web.Request) -> web.Response:
        data = await _body(request)
        ids, dest = data.get("version_ids"), data.get("dest")
        if (
            not isinstance(ids, list)
            or not ids
            or not all(type(i) is int and 1 <= i <= 2_147_483_647 for i in ids)
        ):
            raise BadRequest("'version_ids' must be a non-empty list of version ids")
        if dest is not None and not isinstance(dest, str):
            raise BadRequest("'dest' must be a folder path or null (beside the old files)")
        if dest is not None:
            dest = str(_folder(dest))
            self._guard_path(request, dest, "the destination")
        browser = self.engine.browser
        plan = update_destinations(
            browser.last_library,
            browser.last_roots,
            ids,
            dest,
            self.engine.config.get("bulk.layout"),
        )
        jobs = []
        for version_id, folder in plan:
            job = await self.manager.add_job(
                [f"version:{version_id}"],
                options=JobOptions(dest=folder),
                name=f"update to version {version_id}",
            )
            jobs.append(job.id)
        return web.json_response({"jobs": jobs}, status=201)

    async def openapi(self, _: web.Request) -> web.Response:
        return web.Response(body=OPENAPI.read_bytes(), content_type="application/json")

    async def hand_over_token(self, request: web.Request) -> web.Response:
        """A client's token for an engine that has none; only on the Unix socket."""
        if _over_tcp(request):
            raise web.HTTPForbidden(text="the API token is only accepted on the Unix socket")
        if request.method == "DELETE":
            self.engine.credentials.forget_handed()
        else:
            token = (await _body(request)).get("token")
            if not isinstance(token, str):
                raise BadRequest("'token' (a string) is required")
            try:
                self.engine.credentials.hand_over(token)
            except CivitaiTuiError as err:
                raise BadRequest(err.message) from None
            log.info("API token handed over by a client")
        return web.json_response({"token_source": self.engine.credentials.current()[1]})

    async def shutdown(self, _: web.Request) -> web.Response:
        asyncio.get_running_loop().call_soon(self.engine.request_stop)
        return web.json_response({"stopping": True})

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        # A client that does not answer the close frame is given up on after CLOSE_SECONDS.
        ws = web.WebSocketResponse(heartbeat=20, timeout=CLOSE_SECONDS)
        await ws.prepare(request)
        sub = self.engine.bus.subscribe()
        self._streams.add(ws)
        try:
            await ws.send_json(
                {
                    "type": "snapshot",
                    "jobs": [job_detail(j) for j in self.manager.jobs()],
                    "store_error": self.manager.store_error,
                }
            )
            reader = asyncio.create_task(self._drain_incoming(ws))
            stopping = asyncio.create_task(self.engine.wait_stopped())
            while not ws.closed:
                getter = asyncio.create_task(sub.get())
                done, _ = await asyncio.wait(
                    {getter, reader, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    break
                batch = [getter.result(), *sub.drain()]
                await ws.send_json({"type": "events", "events": [e.to_dict() for e in batch]})
            if stopping.done():  # before the server cuts the connection: say why it ends
                await self._close_stopped(ws)
            reader.cancel()
            stopping.cancel()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            sub.close()
            self._streams.discard(ws)
        return ws

    async def close_streams(self, _: web.Application) -> None:
        """When the server stops without the engine stopping: end every event stream."""
        await asyncio.gather(*(self._close_stopped(ws) for ws in list(self._streams)))

    @staticmethod
    async def _close_stopped(ws: web.WebSocketResponse) -> None:
        """Close with 1001 and "engine stopped", which clients show as such."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=STOPPED_MESSAGE.encode())

    @staticmethod
    async def _drain_incoming(ws: web.WebSocketResponse) -> None:
        async for msg in ws:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break


def make_app(
    engine: Engine, *, token: str | None = None, listen: Listen | None = None
) -> web.Application:
    """The control API application for ``engine`` (``token`` and ``listen`` for TCP)."""
    middlewares = [errors_middleware]
    if token and listen:
        middlewares.insert(0, remote_middleware(token, listen))
    app = web.Application(middlewares=middlewares, client_max_size=1024 * 1024)
    app[ENGINE_KEY] = engine
    api = ControlAPI(engine)
    app.on_shutdown.append(api.close_streams)
    app.router.add_get("/v1/status", api.status)
    app.router.add_get("/v1/jobs", api.list_jobs)
    app.router.add_post("/v1/jobs", api.add_job)
    app.router.add_post("/v1/preview", api.preview)
    app.router.add_get("/v1/jobs/{id}", api.get_job)
    app.router.add_post("/v1/jobs/{id}/priority", api.priority)
    app.router.add_post("/v1/jobs/{id}/max-speed", api.max_speed)
    app.router.add_post("/v1/jobs/{id}/{action}", api.job_action)
    app.router.add_post("/v1/queue/{action}", api.queue_action)
    app.router.add_post("/v1/wait", api.wait)
    app.router.add_get("/v1/analytics", api.analytics)
    app.router.add_post("/v1/reports", api.write_report)
    app.router.add_get("/v1/config", api.get_config)
    app.router.add_put("/v1/config/{key}", api.set_config)
    app.router.add_get("/v1/performance", api.performance)
    app.router.add_put("/v1/performance/mode", api.set_mode)
    app.router.add_post("/v1/token", api.hand_over_token)
    app.router.add_delete("/v1/token", api.hand_over_token)
    app.router.add_post("/v1/shutdown", api.shutdown)
    app.router.add_get("/v1/browse/models", api.browse_search)
    app.router.add_get("/v1/browse/models/{id}", api.browse_model)
    app.router.add_get("/v1/browse/image", api.browse_image)
    app.router.add_get("/v1/library", api.library)
    app.router.add_post("/v1/library/updates", api.queue_updates)
    app.router.add_get("/v1/events", api.events)
    app.router.add_get("/v1/openapi.json", api.openapi)
    return app
