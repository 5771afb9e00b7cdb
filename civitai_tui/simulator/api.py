"""The API origin: CivitAI's ``/api/v1`` metadata endpoints and ``/api/download``.

Faithful to the real server (reference §1): the same JSON shapes, status codes
and error bodies, User-Agent dependent error forms on ``/api/download``, every
download hit counted per token, a per-token daily quota (429 without
``Retry-After``), and a 307 to a signed storage URL on success. The
:class:`~civitai_tui.simulator.faults.ApiFaults` knobs apply here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from civitai_tui.simulator import listing, render
from civitai_tui.simulator.catalogue import Catalogue, SimFile, SimVersion
from civitai_tui.simulator.faults import ApiFaults
from civitai_tui.simulator.httperrors import ApiError
from civitai_tui.simulator.signing import UrlSigner
from civitai_tui.simulator.stats import SimulatorStats
from civitai_tui.simulator.storage import CHALLENGE_HTML, retry_after_value

MAX_ID = 2_147_483_647
MAX_BY_HASH = 100
BROWSER_MARKERS = ("mozilla", "chrome", "safari", "firefox", "opera", "edge")
PUBLIC_CACHE = {"Cache-Control": "public, s-maxage=300, stale-while-revalidate=150"}
QUOTA_MESSAGE = (
    "We've noticed an unusual amount of downloading from your account. "
    "Contact support@civitai.com or come back later."
)
LOGIN_REQUIRED = "The creator of this asset requires you to be logged in to download it"
EARLY_ACCESS_MESSAGE = "This asset is in Early Access. You can use Buzz access it now!"
FILE_SELECTORS = {"type": "type", "format": "format", "size": "size_label", "fp": "fp"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class DownloadPolicy:
    """Who may download, how often, and how long signed URLs live."""

    tokens: set[str]
    require_token: bool
    daily_quota: int
    url_ttl: float


def is_browser(request: web.Request) -> bool:
    agent = request.headers.get("User-Agent", "").lower()
    return any(marker in agent for marker in BROWSER_MARKERS)


def presented_token(request: web.Request) -> str:
    """The token the client sent (``Authorization: <scheme> <token>`` or ``?token=``), or ""."""
    parts = request.headers.get("Authorization", "").split(" ")
    if len(parts) > 1 and parts[1]:
        return parts[1]
    return request.query.get("token", "")


def parse_id(raw: str, what: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
        raise ApiError(400, {"error": f"Invalid {what}: expected an integer from 1 to {MAX_ID}"})
    return int(raw)


def _compute_hashes(files: list[SimFile]) -> None:
    for file in files:
        file.api_hashes()


def page_html(title: str, body: str) -> web.Response:
    html = f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>"
    return web.Response(text=html, content_type="text/html")


@dataclass
class ApiOrigin:
    catalogue: Catalogue
    origins: render.Origins
    signer: UrlSigner
    policy: DownloadPolicy
    faults: ApiFaults
    stats: SimulatorStats

    def app(self, extra_routes: Iterable[web.RouteDef] = ()) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/api/v1/models", self.list_models)
        app.router.add_get("/api/v1/models/{model_id}", self.get_model)
        app.router.add_get("/api/v1/model-versions/by-hash/{hash}", self.version_by_hash)
        app.router.add_post("/api/v1/model-versions/by-hash", self.versions_by_hashes)
        app.router.add_get("/api/v1/model-versions/{version_id}", self.get_version)
        app.router.add_get("/api/download/models/{version_id}", self.download)
        app.router.add_get("/login", self.login_page)
        app.router.add_get("/model-versions/{version_id}", self.version_page)
        app.router.add_routes(list(extra_routes))
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sim/"):
            return await handler(request)
        self.stats.api_requests += 1
        self.stats.api_log.append((time.monotonic(), f"{request.method} {request.path}"))
        if self.faults.challenge and request.path.startswith("/api/"):
            return web.Response(
                status=403,
                text=CHALLENGE_HTML,
                content_type="text/html",
                headers={"cf-mitigated": "challenge"},
            )
        if request.path.startswith("/api/v1/") and self._should_fail():
            headers = {}
            if self.faults.retry_after > 0:
                headers["Retry-After"] = retry_after_value(self.faults.retry_after)
            body = {
                "error": "Too Many Requests" if self.faults.fail_status == 429 else "Unavailable"
            }
            return web.json_response(body, status=self.faults.fail_status, headers=headers)
        try:
            return await handler(request)
        except ApiError as error:
            return error.response()

    def _should_fail(self) -> bool:
        if self.faults.fail_status and self.faults.fail_count > 0:
            self.faults.fail_count -= 1
            return True
        return False

    async def _ready(self, files: Iterable[SimFile]) -> None:
        """Compute missing hashes off the event loop (large files take a while)."""
        pending = [f for f in files if not f.hashes_ready()]
        if pending:
            await asyncio.to_thread(_compute_hashes, pending)

    # --- metadata -------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        query = listing.parse_query(request.query)
        if (query.favorites or query.hidden) and presented_token(request) not in self.policy.tokens:
            raise ApiError(401, {"error": "Unauthorized"})
        models = listing.select(self.catalogue, query, datetime.now(UTC))
        page = listing.paginate(models, query)
        await self._ready(f for m in page.items for v in m.versions for f in v.files)
        metadata: dict[str, Any] = {}
        if page.current_page is not None:
            metadata.update(currentPage=page.current_page, pageSize=query.limit)
        if page.next_cursor is not None:
            metadata["nextCursor"] = page.next_cursor
            metadata["nextPage"] = self._next_page(request, page.next_cursor)
        items = [
            render.model_json(self.origins, m, primary_only=query.primary_only) for m in page.items
        ]
        return web.json_response({"items": items, "metadata": metadata})

    def _next_page(self, request: web.Request, cursor: str) -> str:
        params = [(k, v) for k, v in request.query.items() if k != "cursor"]
        params.append(("cursor", cursor))
        return f"{self.origins.api_url}{request.path}?{urlencode(params)}"

    async def get_model(self, request: web.Request) -> web.Response:
        model_id = parse_id(request.match_info["model_id"], "id")
        model = self.catalogue.model(model_id)
        if model is None:
            raise ApiError(404, {"error": f"No model with id {model_id}"})
        await self._ready(f for v in model.versions for f in v.files)
        return web.json_response(render.model_json(self.origins, model), headers=PUBLIC_CACHE)

    async def _version_response(self, version: SimVersion) -> web.Response:
        await self._ready(version.files)
        model = self.catalogue.model_of_version(version)
        return web.json_response(render.version_json(self.origins, model, version))

    async def get_version(self, request: web.Request) -> web.Response:
        version = self.catalogue.version(parse_id(request.match_info["version_id"], "id"))
        if version is None:
            raise ApiError(404, {"error": "Model not found"})
        if version.primary_file() is None:
            raise ApiError(404, {"error": "Missing model file"})
        return await self._version_response(version)

    async def version_by_hash(self, request: web.Request) -> web.Response:
        await self._ready(self.catalogue.files())
        version = self.catalogue.find_by_hash(request.match_info["hash"])
        if version is None:
            raise ApiError(404, {"error": "Model not found"})
        return await self._version_response(version)

    async def versions_by_hashes(self, request: web.Request) -> web.Response:
        try:
            hashes = await request.json()
        except ValueError:
            raise ApiError(400, {"error": "Expected a JSON array of SHA256 hashes"}) from None
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise ApiError(400, {"error": "Expected a JSON array of SHA256 hashes"})
        if len(hashes) > MAX_BY_HASH:
            raise ApiError(400, {"error": "Too many hashes"})
        await self._ready(self.catalogue.files())
        found: dict[int, SimVersion] = {}
        for value in hashes:
            version = self.catalogue.find_by_hash(value) if len(value) == 64 else None
            if version is not None:
                found.setdefault(version.id, version)
        body = []
        for version in found.values():
            model = self.catalogue.model_of_version(version)
            body.append(render.version_json(self.origins, model, version))
        return web.json_response(body)

    # --- downloads ------------------------------------------------------------------------

    def _download_error(
        self, request: web.Request, status: int, body: dict[str, Any]
    ) -> web.Response:
        headers = {"Cache-Control": "no-store, max-age=0"}
        if is_browser(request):
            return web.Response(
                status=status, text=body.get("message", body["error"]), headers=headers
            )
        return web.json_response(body, status=status, headers=headers)

    def _redirect(self, location: str) -> web.Response:
        return web.Response(
            status=307, headers={"Location": location, "Cache-Control": "no-store, max-age=0"}
        )

    def _select_file(self, request: web.Request, version: SimVersion) -> SimFile | None:
        file_id = request.query.get("fileId")
        if file_id is not None:
            wanted = parse_id(file_id, "fileId")
            return next((f for f in version.files if f.id == wanted), None)
        asked = {
            attr: request.query[param]
            for param, attr in FILE_SELECTORS.items()
            if param in request.query
        }
        if not asked:
            return version.primary_file()
        candidates = sorted(version.files, key=lambda f: not f.primary)
        return next(
            (f for f in candidates if all(getattr(f, a) == v for a, v in asked.items())), None
        )

    async def download(self, request: web.Request) -> web.Response:
        token = presented_token(request)
        self.stats.download_hits[token] += 1
        if self.stats.download_hits[token] > self.policy.daily_quota:
            return self._download_error(request, 429, {"error": QUOTA_MESSAGE})
        version = self.catalogue.version(
            parse_id(request.match_info["version_id"], "modelVersionId")
        )
        file = self._select_file(request, version) if version is not None else None
        if version is None or file is None:
            return self._download_error(request, 404, {"error": "File not found"})
        if self.catalogue.model_of_version(version).mode == "Archived":
            return self._download_error(
                request, 410, {"error": "Model archived, not available for download"}
            )
        deadline = version.early_access_ends_at
        if deadline is not None and deadline > datetime.now(UTC):
            if is_browser(request):
                return self._redirect(f"/model-versions/{version.id}")
            body = {
                "error": "Early Access",
                "deadline": render.iso(deadline),
                "message": EARLY_ACCESS_MESSAGE,
            }
            return self._download_error(request, 403, body)
        if self.policy.require_token and token not in self.policy.tokens:
            if is_browser(request):
                query = urlencode(
                    {"returnUrl": f"/model-versions/{version.id}", "reason": "download-auth"}
                )
                return self._redirect(f"/login?{query}")
            return self._download_error(
                request, 401, {"error": "Unauthorized", "message": LOGIN_REQUIRED}
            )
        return self._redirect(self.signer.url(file.id, file.name, self.policy.url_ttl))

    # --- HTML pages a browser-like client lands on ----------------------------------------

    async def login_page(self, request: web.Request) -> web.Response:
        return page_html("Sign in | Civitai", "<h1>Sign in to Civitai</h1><form></form>")

    async def version_page(self, request: web.Request) -> web.Response:
        return page_html("Model | Civitai", "<h1>Early Access</h1>")
