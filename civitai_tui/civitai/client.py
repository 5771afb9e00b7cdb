"""The CivitAI REST client: metadata, hash lookups, cursor paging, download resolution.

:class:`CivitAIClient` owns one aiohttp session (an async context manager). It
sends a non-browser User-Agent, so errors come back as JSON rather than login
pages. The token goes only as ``Authorization: Bearer`` to the API origin (never
to another host, never in a query string) and is registered with the redactor.
Every failure becomes a :class:`CivitaiTuiError` with the right
:class:`FailureKind` and a message saying what to do. Metadata calls are paced
by a shared :class:`RateLimiter` and retried on 429/5xx/network errors with
jittered backoff; ``/api/download`` is never retried here (every hit counts
against the user's daily quota).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp

from civitai_tui import __version__
from civitai_tui.binding import bound
from civitai_tui.civitai.models import Model, ModelVersion
from civitai_tui.civitai.politeness import Backoff, Pacer, RateLimiter
from civitai_tui.civitai.signed_urls import filename_from_url, signed_url_expiry
from civitai_tui.civitai.urls import REDIRECT_STATUSES, check_redirect, check_url, same_origin
from civitai_tui.download.request import (
    CivitAISourceRef,
    ResolvedURL,
    Source,
    resolve_direct,
)
from civitai_tui.download.retry import parse_retry_after
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import NULL_BUS, EventBus, RetryScheduled
from civitai_tui.net.connector import RoutedConnector
from civitai_tui.net.failures import network_failure, through, tunnel_refused
from civitai_tui.net.network import network_of
from civitai_tui.net.policy import refusal
from civitai_tui.security.redact import mask_url, register_secret
from civitai_tui.session_owner import SessionOwner

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = f"civitai-tui/{__version__}"
TOKEN_HELP = (
    "run `civitai-tui login` or set CIVITAI_API_KEY (civitai.com → Account settings → API Keys)"
)
HASH_BATCH = 100
MAX_REDIRECTS = 3
#: The API calls' retried failures: ``errors.RETRYABLE_KINDS`` without STALLED and PROTOCOL,
#: which are a file transfer's (no forward progress, a broken 206 or Content-Range): an API
#: call reads its whole answer in one request, and an answer that cannot be read is an API error.
_RETRY_KINDS = frozenset({FailureKind.RATE_LIMITED, FailureKind.SERVER, FailureKind.NETWORK})
_DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=15, sock_read=30)

T = TypeVar("T")
MIB = 1024 * 1024


@dataclass(frozen=True)
class ApiLimits:
    """How much a broken or hostile API can make us read (``api.max_answer_mb``,
    ``api.max_listing_pages``): one answer's bytes after decompression (a page of 100
    models is about 1 MB), and the pages of one listing (100 models each)."""

    max_body: int = bound("api.max_answer_mb", 32 * MIB, read=lambda mb: mb * MIB)
    max_pages: int = bound("api.max_listing_pages", 1000)


Params = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class _ReadResponse:
    """A fully read HTTP response."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        """The body as JSON; None when it is not JSON or is nested too deeply to read."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None

    def server_message(self) -> str:
        """The server's own words: JSON ``message``/``error``, or a short plain text."""
        data = self.json()
        if isinstance(data, Mapping):
            text = data.get("message") or data.get("error")
            return str(text) if text else ""
        if self.content_type.startswith("text/plain"):
            return self.body[:200].decode("utf-8", errors="replace").strip()
        return ""

    def is_challenge(self) -> bool:
        if self.headers.get("cf-mitigated", "").lower() == "challenge":
            return True
        head = self.body[:4096].lower()
        return "html" in self.content_type and (
            b"just a moment" in head or b"challenge-platform" in head
        )


def _challenge(what: str, status: int) -> CivitaiTuiError:
    return CivitaiTuiError(
        FailureKind.CHALLENGE,
        f"{what}: CivitAI answered with a Cloudflare bot-check page instead of data; "
        "this usually means too many requests from this address: wait a few minutes, "
        "lower the request rate, then retry",
        status=status,
    )


class CivitAIClient(SessionOwner):
    """An async client for one CivitAI API origin (``base_url``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | Callable[[], str | None] | None = None,
        *,
        allow_http: bool = False,
        user_agent: str = DEFAULT_USER_AGENT,
        bus: EventBus | None = None,
        limiter: Pacer | None = None,
        download_limiter: Pacer | None = None,
        backoff: Backoff | None = None,
        timeout: aiohttp.ClientTimeout = _DEFAULT_TIMEOUT,
        limits: ApiLimits | None = None,
    ) -> None:
        self.base_url = check_url(base_url.strip().rstrip("/"), allow_http)
        parts = urlsplit(self.base_url)
        if parts.username is not None or parts.password is not None:
            raise CivitaiTuiError(
                FailureKind.BAD_CONFIG,
                f"CIVITAI_BASE_URL ({mask_url(self.base_url)}) carries credentials "
                "(user:password@); they are never sent: remove them from the URL and put the "
                "API token in CIVITAI_API_KEY",
            )
        self.allow_http = allow_http
        # A callable is asked on every request (the engine's token can change while it runs).
        self._token: Callable[[], str | None] = (
            api_key if callable(api_key) else lambda key=api_key or None: key
        )
        register_secret(self._token())
        self._user_agent = user_agent
        self._bus = bus or NULL_BUS
        self._limiter: Pacer = limiter or RateLimiter()
        #: /api/download hits are paced apart from metadata: a bulk job needs one per file.
        self._download_limiter: Pacer = download_limiter or RateLimiter(100.0, burst=10)
        self._backoff = backoff or Backoff()
        self.limits = limits or ApiLimits()
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"CivitAIClient({self.base_url!r}, token={'set' if self._token() else 'none'})"

    def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=RoutedConnector(),  # proxies, TLS trust, address policy (civitai_tui.net)
            headers={"User-Agent": self._user_agent},
            timeout=self._timeout,
            # trust_env would also send ~/.netrc logins (and crash beside our Bearer
            # header); proxies come from civitai_tui.net, .netrc is never read.
            trust_env=False,
        )

    # -- transport -------------------------------------------------------------------

    def _headers(self, url: str) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self._token()
        if token and same_origin(url, self.base_url):
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _send(
        self,
        method: str,
        url: str,
        what: str,
        params: Params | None,
        body: Any,
        limiter: Pacer | None = None,
    ) -> _ReadResponse:
        if self._session is None:
            raise RuntimeError("use CivitAIClient inside 'async with'")
        await (limiter or self._limiter).acquire()
        log.debug("%s %s", method, mask_url(url))
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                json=body,
                headers=self._headers(url),
                allow_redirects=False,
            ) as resp:
                data = await self._read_capped(resp, what)
                return _ReadResponse(resp.status, resp.headers, data, str(resp.url))
        except (aiohttp.ClientError, TimeoutError) as exc:
            refused = refusal(exc)
            if refused is not None:
                raise CivitaiTuiError(refused.kind, f"{what}: {refused.message}") from exc
            host = urlsplit(mask_url(url)).netloc
            proxy = network_of(self._session).routes.for_url(url)
            specific = network_failure(exc, host, proxy)
            if specific is not None:
                raise CivitaiTuiError(
                    specific.kind, f"{what}: {specific.message}", status=specific.status
                ) from exc
            reason = str(exc) or type(exc).__name__
            raise CivitaiTuiError(
                FailureKind.NETWORK,
                f"{what}: cannot reach {host}{through(proxy)} ({reason}); check the network "
                "connection and CIVITAI_BASE_URL",
            ) from exc

    async def _read_capped(self, resp: aiohttp.ClientResponse, what: str) -> bytes:
        """The body (decompressed as it streams in), refused past ``limits.max_body``."""
        cap, body = self.limits.max_body, bytearray()
        async for chunk in resp.content.iter_chunked(256 * 1024):
            body += chunk
            if len(body) > cap:
                raise CivitaiTuiError(
                    FailureKind.API,
                    f"{what}: the answer is larger than {cap / MIB:g} MiB once decompressed "
                    "(a broken or hostile server?); it was not read further "
                    "(the cap is api.max_answer_mb)",
                    status=resp.status,
                )
        return bytes(body)

    async def _fetch(
        self, method: str, path: str, what: str, params: Params | None, body: Any
    ) -> _ReadResponse:
        """One request on the API origin, following safe redirects (token stays home)."""
        url = self.base_url + path
        for _ in range(MAX_REDIRECTS + 1):
            answer = await self._send(method, url, what, params, body)
            location = answer.headers.get("Location")
            if answer.status not in REDIRECT_STATUSES or not location:
                return answer
            self._raise_if_login(answer.url, location, what)
            url, params = check_redirect(answer.url, location, self.allow_http), None
        raise CivitaiTuiError(FailureKind.API, f"{what}: too many redirects from CivitAI")

    def _raise_if_login(self, from_url: str, location: str, what: str) -> None:
        target = urljoin(from_url, location)
        if same_origin(target, self.base_url) and urlsplit(target).path.startswith("/login"):
            raise self._auth_error(what, "CivitAI redirected to its login page", status=None)

    # -- error mapping -----------------------------------------------------------------

    def _auth_error(self, what: str, detail: str, status: int | None) -> CivitaiTuiError:
        if not self._token():
            message = f"{what} needs a CivitAI API token ({detail}): {TOKEN_HELP}"
        else:
            message = (
                f"{what} was refused with the configured API token ({detail}); check that "
                f"the key is current and allowed to download this file: {TOKEN_HELP}"
            )
        return CivitaiTuiError(FailureKind.AUTH_REQUIRED, message, status=status)

    def _error(
        self, answer: _ReadResponse, what: str, *, download: bool = False
    ) -> CivitaiTuiError:
        status = answer.status
        if answer.is_challenge():
            return _challenge(what, status)
        said = answer.server_message()
        detail = f"{status}: {said}" if said else f"HTTP {status}"
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        data = answer.json()
        if status == 401:
            return self._auth_error(what, detail, status)
        if status == 407:  # only a proxy says this (to an http:// request it forwards)
            proxy = network_of(self._session).routes.for_url(answer.url) if self._session else None
            error = tunnel_refused(urlsplit(answer.url).netloc, proxy, status, "")
            return CivitaiTuiError(error.kind, f"{what}: {error.message}", status=status)
        if (
            status == 403
            and isinstance(data, Mapping)
            and (data.get("error") == "Early Access" or "deadline" in data)
        ):
            deadline = data.get("deadline") or "an unknown date"
            return CivitaiTuiError(
                FailureKind.EARLY_ACCESS,
                f"{what} is in Early Access until {deadline}; it becomes free to download "
                "then (or buy access with Buzz on civitai.com now)",
                status=status,
            )
        if status == 403:
            return CivitaiTuiError(
                FailureKind.FORBIDDEN,
                f"{what} is not accessible with this account ({detail})",
                status=status,
            )
        if status == 404:
            return CivitaiTuiError(
                FailureKind.NOT_FOUND,
                f"{what} was not found on CivitAI ({detail}); check the id",
                status=status,
            )
        if status == 410:
            return CivitaiTuiError(
                FailureKind.GONE,
                f"{what} is no longer available: the model was archived or taken down ({detail})",
                status=status,
            )
        if status == 429 and download:
            return CivitaiTuiError(
                FailureKind.QUOTA,
                f"{what}: CivitAI's daily download quota for this account is used up ({detail}); "
                "downloads will work again within 24 hours (this is not retried automatically)",
                status=status,
            )
        if status in (429, 503):
            return CivitaiTuiError(
                FailureKind.RATE_LIMITED,
                f"{what}: CivitAI is rate-limiting requests ({detail}); wait a few minutes "
                "and retry",
                status=status,
                retry_after=retry_after,
            )
        if status >= 500:
            return CivitaiTuiError(
                FailureKind.SERVER, f"{what}: CivitAI server error ({detail})", status=status
            )
        return CivitaiTuiError(
            FailureKind.API, f"{what}: unexpected answer from CivitAI ({detail})", status=status
        )

    def _json_body(self, answer: _ReadResponse, what: str) -> Any:
        if not 200 <= answer.status < 300:
            raise self._error(answer, what)
        if answer.is_challenge():
            raise _challenge(what, answer.status)
        data = answer.json()
        if data is None and "json" in answer.content_type:
            raise CivitaiTuiError(
                FailureKind.API,
                f"{what}: CivitAI sent JSON that cannot be read (malformed or nested too "
                "deeply); retry later",
                status=answer.status,
            )
        if data is None:
            raise CivitaiTuiError(
                FailureKind.API,
                f"{what}: expected JSON but got {answer.content_type or 'an unknown type'}; "
                f"is CIVITAI_BASE_URL ({self.base_url}) the CivitAI API origin?",
                status=answer.status,
            )
        return data

    # -- JSON calls with retry ---------------------------------------------------------

    async def _call_json(
        self, method: str, path: str, what: str, params: Params | None = None, body: Any = None
    ) -> Any:
        attempts = max(1, self._backoff.attempts)
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = await self._fetch(method, path, what, params, body)
                return self._json_body(answer, what)
            except CivitaiTuiError as err:
                if err.kind is FailureKind.RATE_LIMITED:
                    self._limiter.slow_down(err.retry_after)
                if err.kind not in _RETRY_KINDS or attempt == attempts:
                    raise
                delay = self._backoff.delay(attempt, err.retry_after)
                log.info("retrying %s in %.2fs (attempt %d): %s", what, delay, attempt, err)
                self._bus.publish(
                    RetryScheduled(
                        key="api",
                        attempt=attempt,
                        delay=delay,
                        reason=err.message,
                        status=err.status,
                    )
                )
                await asyncio.sleep(delay)

    @staticmethod
    def _parse(parse: Callable[[Any], T], data: Any, what: str) -> T:
        try:
            return parse(data)
        except (ValueError, TypeError, AttributeError) as exc:
            raise CivitaiTuiError(
                FailureKind.API, f"{what}: CivitAI sent data we cannot read ({exc})"
            ) from exc

    # -- metadata ----------------------------------------------------------------------

    async def check_token(self) -> None:
        """Raise AUTH_REQUIRED unless CivitAI accepts the token (favourites need a valid one)."""
        await self._call_json(
            "GET", "/api/v1/models", "checking the API token", {"favorites": "true", "limit": 1}
        )

    async def get_model(self, model_id: int) -> Model:
        what = f"model {model_id}"
        data = await self._call_json("GET", f"/api/v1/models/{int(model_id)}", what)
        return self._parse(Model.from_json, data, what)

    async def model_data(self, model_id: int) -> Mapping[str, Any]:
        """``/api/v1/models/{id}``'s answer as JSON (Browse reads fields ``Model`` drops)."""
        what = f"model {model_id}"
        data = await self._call_json("GET", f"/api/v1/models/{int(model_id)}", what)
        if not isinstance(data, Mapping):
            raise CivitaiTuiError(FailureKind.API, f"{what}: expected a JSON object")
        return data

    async def models_page(self, params: Params) -> tuple[list[Mapping[str, Any]], str | None]:
        """One page of ``/api/v1/models`` as JSON items, and the cursor of the next (or None)."""
        cursor = dict(params).get("cursor")
        what = "the model list" + (f" (page after cursor {cursor})" if cursor else "")
        data = await self._call_json("GET", "/api/v1/models", what, params=params)
        items = data.get("items") if isinstance(data, Mapping) else None
        if not isinstance(items, list):
            raise CivitaiTuiError(FailureKind.API, f"{what}: the answer has no 'items' list")
        metadata = data.get("metadata")
        next_cursor = metadata.get("nextCursor") if isinstance(metadata, Mapping) else None
        found = [item for item in items if isinstance(item, Mapping)]
        return found, (str(next_cursor) if next_cursor not in (None, "") and found else None)

    async def get_version(self, version_id: int) -> ModelVersion:
        what = f"model version {version_id}"
        data = await self._call_json("GET", f"/api/v1/model-versions/{int(version_id)}", what)
        return self._parse(ModelVersion.from_json, data, what)

    async def get_version_by_hash(self, file_hash: str) -> ModelVersion:
        what = f"the model version with hash {file_hash.upper()}"
        if not file_hash.isalnum():
            raise CivitaiTuiError(FailureKind.BAD_TARGET, f"{file_hash!r} is not a hex hash")
        path = f"/api/v1/model-versions/by-hash/{file_hash.upper()}"
        data = await self._call_json("GET", path, what)
        return self._parse(ModelVersion.from_json, data, what)

    async def versions_by_hashes(self, hashes: Iterable[str]) -> list[ModelVersion]:
        """The versions whose files have these SHA256s (unknown hashes are skipped)."""
        unique = list(dict.fromkeys(h.upper() for h in hashes))
        found: dict[int, ModelVersion] = {}
        for start in range(0, len(unique), HASH_BATCH):
            batch = unique[start : start + HASH_BATCH]
            what = f"the hash lookup ({len(batch)} hashes)"
            data = await self._call_json("POST", "/api/v1/model-versions/by-hash", what, body=batch)
            if not isinstance(data, list):
                raise CivitaiTuiError(FailureKind.API, f"{what}: expected a JSON array")
            for item in data:
                version = self._parse(ModelVersion.from_json, item, what)
                found.setdefault(version.id, version)
        return list(found.values())

    async def iter_models(
        self,
        *,
        query: str | None = None,
        username: str | None = None,
        tag: str | None = None,
        types: Iterable[str] = (),
        base_models: Iterable[str] = (),
        sort: str | None = None,
        period: str | None = None,
        nsfw: bool | None = None,
        primary_file_only: bool | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Model]:
        """Models matching the filters, following ``metadata.nextCursor`` to the end.

        ``limit`` caps the number of models yielded; ``page_size`` (1..100) is how
        many each request asks for. A listing longer than ``limits.max_pages`` pages
        (an endless cursor) is an error after the models of those pages.
        """
        if limit is not None and limit <= 0:
            return
        per_page = max(1, min(100, page_size, limit or 100))
        params: list[tuple[str, str]] = [("limit", str(per_page))]
        for key, value in (("query", query), ("username", username), ("tag", tag)):
            if value:
                params.append((key, value))
        params += [("types", t) for t in types] + [("baseModels", b) for b in base_models]
        for key, value in (("sort", sort), ("period", period)):
            if value:
                params.append((key, value))
        for key, flag in (("nsfw", nsfw), ("primaryFileOnly", primary_file_only)):
            if flag is not None:
                params.append((key, "true" if flag else "false"))
        yielded = 0
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = params + ([("cursor", cursor)] if cursor else [])
            what = "the model list" + (f" (page after cursor {cursor})" if cursor else "")
            data = await self._call_json("GET", "/api/v1/models", what, params=page)
            items = data.get("items") if isinstance(data, Mapping) else None
            if not isinstance(items, list):
                raise CivitaiTuiError(FailureKind.API, f"{what}: the answer has no 'items' list")
            for item in items:
                yield self._parse(Model.from_json, item, what)
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            metadata = data.get("metadata")
            next_cursor = metadata.get("nextCursor") if isinstance(metadata, Mapping) else None
            if not items or next_cursor in (None, ""):
                return
            if len(seen) + 1 >= self.limits.max_pages:
                raise CivitaiTuiError(
                    FailureKind.API,
                    f"the model list: stopped after {len(seen) + 1} pages ({yielded} models) "
                    "while CivitAI still offers more; narrow the filters, give --limit, or "
                    "raise api.max_listing_pages",
                )
            cursor = str(next_cursor)
            if cursor in seen:
                raise CivitaiTuiError(
                    FailureKind.API, f"{what}: CivitAI sent the same cursor twice; stopping"
                )
            seen.add(cursor)

    # -- downloads ---------------------------------------------------------------------

    async def resolve_source(self, source: Source) -> ResolvedURL:
        """A URL for a request's source: the downloader's resolver (it never holds the token)."""
        if isinstance(source, CivitAISourceRef):
            return await self.resolve_download(source.version_id, source.file_id)
        return await resolve_direct(source)

    async def resolve_download(self, version_id: int, file_id: int | None = None) -> ResolvedURL:
        """The signed storage URL for a file (one counted hit on ``/api/download``)."""
        what = f"the download of model version {version_id}" + (
            f" file {file_id}" if file_id else ""
        )
        params = [("fileId", str(int(file_id)))] if file_id else None
        path = f"/api/download/models/{int(version_id)}"
        answer = await self._send(
            "GET", self.base_url + path, what, params, None, self._download_limiter
        )
        if answer.status in (429, 503):
            self._download_limiter.slow_down(parse_retry_after(answer.headers.get("Retry-After")))
        location = answer.headers.get("Location")
        if answer.status in REDIRECT_STATUSES and location:
            return self._resolved(answer.url, location, what)
        if 200 <= answer.status < 300:
            if answer.is_challenge():
                raise _challenge(what, answer.status)
            raise CivitaiTuiError(
                FailureKind.API,
                f"{what}: expected a redirect to the file's storage URL but got HTTP "
                f"{answer.status} ({answer.content_type or 'no content type'})",
                status=answer.status,
            )
        raise self._error(answer, what, download=True)

    def _resolved(self, from_url: str, location: str, what: str) -> ResolvedURL:
        self._raise_if_login(from_url, location, what)
        target = urljoin(from_url, location)
        if same_origin(target, self.base_url) and urlsplit(target).path.startswith(
            "/model-versions/"
        ):
            raise CivitaiTuiError(
                FailureKind.EARLY_ACCESS,
                f"{what}: CivitAI sent us to the version page instead of the file, which it "
                "does for Early Access versions; check the version page on civitai.com",
            )
        url = check_redirect(from_url, location, self.allow_http)
        return ResolvedURL(url, signed_url_expiry(url), filename_from_url(url))
