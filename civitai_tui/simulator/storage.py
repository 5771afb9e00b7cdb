"""The storage origin: signed file URLs with strict ranges, and the fault knobs.

``GET``/``HEAD /files/{fileId}/{name}?expires=&sig=`` behaves like a pre-signed
S3/R2 URL (403 XML on a bad or expired signature; ``Content-Disposition`` with
the raw UTF-8 name; strong ``ETag``; RFC 9110 ranges and ``If-Range``).
``GET /images/{id}.png`` serves preview images. Every knob of
:class:`~civitai_tui.simulator.faults.Faults` is applied per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiohttp import web

from civitai_tui.simulator import pictures
from civitai_tui.simulator.catalogue import Catalogue, SimFile
from civitai_tui.simulator.content import BLOCK
from civitai_tui.simulator.faults import FaultBoard, Faults
from civitai_tui.simulator.ranges import ByteRange, Unsatisfiable, if_range_holds, parse_range
from civitai_tui.simulator.render import CDN_KEY
from civitai_tui.simulator.signing import UrlSigner
from civitai_tui.simulator.stats import SimulatorStats
from civitai_tui.simulator.throttle import TokenBucket, chunk_for_rate

#: ``corrupt`` flips the byte at every offset ≡ 4095 (mod 64 KiB).
CORRUPT_PERIOD, CORRUPT_PHASE = 1 << 16, 4095
#: A new upload (``etag_change_after_requests``) differs at every offset ≡ 2048 (mod 4 KiB).
UPLOAD_PERIOD, UPLOAD_PHASE = 4096, 2048
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
CHALLENGE_HTML = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body><h1>Checking your browser before accessing the site.</h1></body></html>"
)


def s3_error(status: int, code: str, message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


def flip_bytes(data: bytes, offset: int, period: int, phase: int, mask: int) -> bytes:
    """XOR ``mask`` into every byte of ``data`` whose absolute offset ≡ phase (mod period)."""
    first = (phase - offset) % period
    if first >= len(data):
        return data
    out = bytearray(data)
    for index in range(first, len(out), period):
        out[index] ^= mask
    return bytes(out)


def content_disposition(name: str) -> str:
    """``attachment; filename="<name>"`` with the raw name (control characters dropped)."""
    safe = _CONTROL_CHARS.sub("_", name).replace("\\", "\\\\").replace('"', '\\"')
    return f'attachment; filename="{safe}"'


def retry_after_value(seconds: float) -> str:
    return f"{seconds:g}"


@dataclass
class Representation:
    """What one request for a file gets: its version (upload generation) and validators."""

    file: SimFile
    generation: int
    etag: str
    last_modified: datetime

    def read(self, start: int, end: int, corrupt: bool) -> bytes:
        data = self.file.read(start, end)
        if self.generation:
            data = flip_bytes(data, start, UPLOAD_PERIOD, UPLOAD_PHASE, self.generation & 0xFF)
        if corrupt:
            data = flip_bytes(data, start, CORRUPT_PERIOD, CORRUPT_PHASE, 0xFF)
        return data


@dataclass
class StorageOrigin:
    catalogue: Catalogue
    signer: UrlSigner
    faults: FaultBoard
    stats: SimulatorStats
    #: Counts the origin's open TCP connections (wired up once the server runs).
    count_connections: Callable[[], int] = lambda: 0
    _requests: Counter[int] = field(default_factory=Counter)
    total_bucket: TokenBucket = field(default_factory=TokenBucket)
    #: File responses being sent now (``max_active_requests``).
    active: dict[int, web.Request] = field(default_factory=dict)  # by id(request)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(r"/files/{file_id:\d+}/{name:.*}", self.serve_file)
        app.router.add_get(r"/images/{image_id:\d+}.png", self.serve_image)
        app.router.add_get(r"/images/width={width:\d+}/{image_id:\d+}.png", self.serve_image)
        app.router.add_get(
            "/" + CDN_KEY + r"/{uuid}/{size:width=\d+|original=true}/{image_id:\d+}.{ext}",
            self.serve_picture,
        )
        return app

    def _observe(self, request: web.Request) -> None:
        self.stats.storage_requests += 1
        self.stats.saw_connections(self.count_connections())
        auth = request.headers.get("Authorization")
        if auth is not None:
            self.stats.storage_auth_headers.append(auth)

    async def serve_image(self, request: web.Request) -> web.Response:
        self._observe(request)
        image = self.catalogue.image(int(request.match_info["image_id"]))
        if image is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return web.Response(body=image.png, content_type="image/png")

    async def serve_picture(self, request: web.Request) -> web.Response:
        """A gallery picture at the asked width (at most its own), like CivitAI's CDN."""
        self._observe(request)
        image = self.catalogue.image(int(request.match_info["image_id"]))
        if image is None or not image.drawn:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        size = request.match_info["size"]
        width = image.width if size == "original=true" else int(size.partition("=")[2])
        width = max(1, min(width, image.width))
        height = max(1, round(image.height * width / image.width))
        data = await asyncio.to_thread(pictures.draw, image.id, width, height, image.drawn)
        return web.Response(body=data, content_type=pictures.CONTENT_TYPES[image.drawn])

    async def serve_file(self, request: web.Request) -> web.StreamResponse:
        self._observe(request)
        file = self.catalogue.file(int(request.match_info["file_id"]))
        if file is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        denied = self._check_signature(request, file.id)
        if denied is not None:
            return denied
        self.stats.range_requests.append((file.id, request.headers.get("Range")))
        faults = self.faults.for_file(file.id)
        if request.query.get("sig", "") in faults.revoked:
            return s3_error(403, "AccessDenied", "Access Denied")
        refused = await self._refusal(request, faults)
        if refused is not None:
            return refused
        rep = self._representation(file, faults)
        try:
            chosen = self._choose_range(request, rep, faults)
        except Unsatisfiable:
            headers = {"Content-Range": f"bytes */{file.size}", "Accept-Ranges": "bytes"}
            return web.Response(status=416, headers=headers)
        return await self._send(request, rep, chosen, faults)

    def _check_signature(self, request: web.Request, file_id: int) -> web.Response | None:
        expires_raw, sig = request.query.get("expires", ""), request.query.get("sig", "")
        if not expires_raw.isdigit() or not self.signer.valid_signature(
            file_id, int(expires_raw), sig
        ):
            return s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if int(expires_raw) < time.time():
            return s3_error(403, "AccessDenied", "Request has expired")
        return None

    async def _refusal(self, request: web.Request, faults: Faults) -> web.StreamResponse | None:
        """fail_status / max_connections / html_body answers, if one is in force."""
        if faults.fail_status and faults.fail_count > 0:
            faults.fail_count -= 1
            headers = {}
            if faults.retry_after > 0:
                headers["Retry-After"] = retry_after_value(faults.retry_after)
            return web.Response(
                status=faults.fail_status, text="simulated failure", headers=headers
            )
        if faults.max_connections and self.stats.open_connections > faults.max_connections:
            return await self._over_limit(request, faults)
        if faults.max_active_requests and self.active_requests() >= faults.max_active_requests:
            return await self._over_limit(request, faults)
        if faults.html_body:
            return web.Response(text=CHALLENGE_HTML, content_type="text/html")
        return None

    def active_requests(self) -> int:
        """Responses being sent on connections still open (a client that hung up frees
        its slot at once, as in nginx, not at the response's next write)."""
        return sum(1 for r in self.active.values() if r.transport and not r.transport.is_closing())

    async def _over_limit(self, request: web.Request, faults: Faults) -> web.StreamResponse:
        """A request over the connection limit, refused the way ``limit_answer`` says."""
        self.stats.refused += 1
        how = faults.limit_answer
        if how in ("reset", "hang"):
            if how == "hang":
                await asyncio.sleep(faults.limit_hang_seconds)
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)  # never sent: the connection is gone
        if how == "429":
            return web.Response(status=429, text="Too Many Requests")
        headers = {"Retry-After": retry_after_value(faults.limit_retry_after)}
        return web.Response(status=503, text="Slow Down", headers=headers)

    def _representation(self, file: SimFile, faults: Faults) -> Representation:
        self._requests[file.id] += 1
        threshold = faults.etag_change_after_requests
        generation = 1 if threshold and self._requests[file.id] > threshold else 0
        seed = f"{self.catalogue.seed}:{file.id}:{generation}".encode()
        etag = '"' + hashlib.blake2s(seed, digest_size=12).hexdigest() + '"'
        version = self.catalogue.version_of_file(file)
        modified = version.published_at + timedelta(hours=generation)
        return Representation(file, generation, etag, modified.replace(microsecond=0))

    def _choose_range(
        self, request: web.Request, rep: Representation, faults: Faults
    ) -> ByteRange | None:
        if faults.ignore_range:
            return None
        if not if_range_holds(request.headers.get("If-Range"), rep.etag, rep.last_modified):
            return None
        return parse_range(request.headers.get("Range"), rep.file.size)

    async def _send(
        self, request: web.Request, rep: Representation, chosen: ByteRange | None, faults: Faults
    ) -> web.StreamResponse:
        size = rep.file.size
        start, end = (chosen.start, chosen.end + 1) if chosen else (0, size)
        response = web.StreamResponse(status=206 if chosen else 200)
        response.headers.update(
            {
                "Content-Type": "application/octet-stream",
                "Content-Disposition": content_disposition(rep.file.name),
                "Accept-Ranges": "bytes",
                "ETag": rep.etag,
                "Last-Modified": rep.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            }
        )
        if chosen is not None:
            shown = _shifted(chosen) if faults.wrong_content_range else chosen
            response.headers["Content-Range"] = shown.content_range(size)
        gzip = faults.gzip_ranged and chosen is not None
        if gzip:
            response.headers["Content-Encoding"] = "gzip"
            response.enable_chunked_encoding()
        else:
            length = end - start
            response.content_length = max(0, length - 1) if faults.wrong_content_length else length
        self.active[id(request)] = request
        self.stats.saw_active(self.active_requests())
        try:
            if faults.first_byte_latency > 0:
                await asyncio.sleep(faults.first_byte_latency)
            await response.prepare(request)
            if request.method != "HEAD":
                await _BodySender(
                    self.stats, self.total_bucket, request, response, rep, faults
                ).send(start, end, gzip)
        except ConnectionError:
            pass  # the client went away: normal for a downloader that pauses
        finally:
            del self.active[id(request)]
        return response


def _shifted(chosen: ByteRange) -> ByteRange:
    """A Content-Range whose start differs from the one asked for."""
    if chosen.start > 0:
        return ByteRange(chosen.start - 1, chosen.end - 1)
    return ByteRange(1, chosen.end)


@dataclass
class _BodySender:
    """Writes one response body, applying rates, resets, stalls, trickle and flips."""

    stats: SimulatorStats
    total_bucket: TokenBucket  # shared by every response of the origin
    request: web.Request
    response: web.StreamResponse
    rep: Representation
    faults: Faults
    sent: int = 0
    _bucket: TokenBucket = field(default_factory=TokenBucket)

    def _rate(self) -> int:
        rates = [self.faults.per_connection_rate]
        if self.faults.trickle_after_bytes and self.sent >= self.faults.trickle_after_bytes:
            rates.append(self.faults.trickle_rate)
        active = [r for r in rates if r > 0]
        return min(active) if active else 0

    def _next_size(self, remaining: int) -> int:
        faults = self.faults
        rates = [r for r in (self._rate(), faults.total_rate) if r > 0]
        size = chunk_for_rate(min(rates), BLOCK) if rates else BLOCK
        if faults.pacing_burst > 0 and self._rate() > 0:
            size = max(size, int(self._rate() * faults.pacing_burst))  # one burst per write
        for boundary in (
            faults.reset_after_bytes,
            faults.stall_after_bytes,
            faults.trickle_after_bytes,
        ):
            if boundary > self.sent:
                size = min(size, boundary - self.sent)
        return min(size, remaining)

    async def send(self, start: int, end: int, gzip: bool) -> None:
        faults = self.faults
        transport = self.request.transport
        if transport is not None and (faults.reset_after_bytes or faults.stall_after_bytes):
            transport.set_write_buffer_limits(high=0)  # each write then waits until flushed
        compressor = zlib.compressobj(wbits=31) if gzip else None
        pos = start
        while pos < end:
            data = self.rep.read(pos, pos + self._next_size(end - pos), faults.corrupt)
            await self._bucket.consume(len(data), self._rate())
            await self.total_bucket.consume(len(data), faults.total_rate)
            await self.response.write(compressor.compress(data) if compressor else data)
            pos += len(data)
            self.sent += len(data)
            self.stats.storage_bytes_sent += len(data)
            self.stats.bytes_per_file[self.rep.file.id] += len(data)
            if await self._break_connection():
                return
        if compressor is not None:
            await self.response.write(compressor.flush())
        await self.response.write_eof()

    async def _break_connection(self) -> bool:
        """Apply reset/stall once their byte count is reached; True if the connection died."""
        faults = self.faults
        reset = faults.reset_after_bytes and self.sent >= faults.reset_after_bytes
        stall = faults.stall_after_bytes and self.sent >= faults.stall_after_bytes
        if not (reset or stall):
            return False
        if stall:
            await asyncio.sleep(faults.stall_seconds)
        if self.request.transport is not None:
            self.request.transport.abort()
        return True
