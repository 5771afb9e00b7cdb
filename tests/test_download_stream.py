"""The threaded fast path (RangeStream) against the real simulator and a real TLS server.

Cancellation must let go of the connection and its descriptors at once (the
server sees the close, the simulator shuts down cleanly), a stolen segment's
thread stops at the new end, connections are kept alive between requests,
TLS is verified, and stalls and trickles are detected on the thread as well.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import os
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from test_download_support import (
    KiB,
    MiB,
    dest_fixture,  # noqa: F401 - the ``dest`` fixture
    downloader,
    fast_settings,
    pick,
    request_for,
)

import civitai_tui
from civitai_tui.download import splice
from civitai_tui.download.ranges import Segment
from civitai_tui.download.stream import Outcome, RangeStream
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import EventBus, FileProgress, RetryScheduled
from civitai_tui.simulator.catalogue import SimFile
from civitai_tui.simulator.server import Simulator
from tests.loopback import serve_app


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)


async def only_the_probe_left(sim: Simulator, timeout: float = 2.0) -> bool:
    """Probe the storage origin until it counts one open connection (the probe's)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            url = sim.storage_url + "/files/0/probe"
            async with session.get(url, headers={"Connection": "close"}) as resp:
                await resp.read()
            if sim.stats.open_connections == 1:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)


class Part:
    """A preallocated file to pump into, closed by the test."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self.fd, size)

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def part(tmp_path: Path) -> Iterator[Part]:
    made = Part(tmp_path / "file.part", 0)
    yield made
    made.close()


async def fetch(
    stream: RangeStream,
    url: str,
    part: Part,
    seg: Segment,
    *,
    landed: Callable[[int], None] = lambda n: None,
    min_speed: int = 0,
    window: float = 30.0,
    extra: dict[str, str] | None = None,
) -> Outcome:
    """One ranged request for ``seg`` on ``stream`` and its body into ``part``."""
    headers = {"Range": f"bytes={seg.pos}-{seg.end - 1}", **(extra or {})}
    answer = await stream.run(partial(stream.request, url, headers))
    assert answer.status == 206, answer.status
    return await stream.run(
        partial(
            stream.pump,
            part.fd,
            seg,
            seg.pos,
            seg.end,
            where=part.path,
            landed=landed,
            stop_wanted=lambda: False,
            min_speed=min_speed,
            window=window,
        )
    )


def first_bytes_event() -> tuple[asyncio.Event, Callable[[int], None]]:
    """An event set (on the loop) when the thread reports its first written bytes."""
    loop, event = asyncio.get_running_loop(), asyncio.Event()
    return event, lambda n: loop.call_soon_threadsafe(event.set)


def medium(sim: Simulator) -> SimFile:
    return pick(sim, 2 * MiB, 6 * MiB)


# ------------------------------------------------------------------ cancellation
@pytest.mark.parametrize(
    "extra",
    [{}, {"Connection": "close"}],
    ids=["keep-alive", "close"],  # with "close", http.client hands the socket to the response
)
async def test_cancel_mid_body_releases_the_connection_and_fds_at_once(
    sim: Simulator, part: Part, extra: dict[str, str]
) -> None:
    file = medium(sim)
    sim.faults.set(file.id, per_connection_rate=256 * KiB)
    baseline = open_fds()
    stream = RangeStream(timeout=30.0, buffer_size=64 * KiB)
    started, landed = first_bytes_event()
    task = asyncio.create_task(
        fetch(
            stream,
            sim.signed_url(file.id),
            part,
            Segment(0, file.size, 0),
            landed=landed,
            extra=extra,
        )
    )
    await asyncio.wait_for(started.wait(), 10)
    # In this process: our socket, the stream's wake-up duplicate, the server's end,
    # and (plain HTTP past the first bytes) the two ends of the splice pipe.
    assert open_fds() == baseline + 3 + (2 if splice.available() else 0)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - cancelled_at < 1.0  # not the 30 s socket timeout
    await until(lambda: open_fds() == baseline, timeout=1.0)  # both ends closed
    assert await only_the_probe_left(sim)  # the server saw the close
    await asyncio.wait_for(sim.close(), 5)


async def test_cancelled_download_under_503s_leaves_no_connection_open(
    sim: Simulator, dest: Path
) -> None:
    """The busy path (``Connection: close`` answers) must not leak an unread response."""
    file = pick(sim, 3 * MiB, 8 * MiB)
    # One connection, reset every 512 KiB: each reset is a new request. Once bytes flow,
    # the next request is refused (503): the connection, the only one (so not one too
    # many), waits out Retry-After and asks again with "Connection: close".
    sim.faults.set(per_connection_rate=1 * MiB, reset_after_bytes=512 * KiB)
    bus = EventBus()
    seen: list[object] = []
    bus.add_callback(seen.append)
    settings = fast_settings(connections=1, min_split=256 * KiB, stall_timeout=10.0)
    async with downloader(settings, bus) as dl:
        task = asyncio.create_task(dl.download(request_for(sim, file, dest)))
        await until(lambda: any(isinstance(e, FileProgress) and e.done for e in seen), 15)
        sim.faults.set(fail_status=503, fail_count=1, retry_after=0.2)
        # Wait until it is back and streaming, then cancel in the middle of the body.
        await until(lambda: busy_and_streaming(seen), timeout=15)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await only_the_probe_left(sim)
    await asyncio.wait_for(sim.close(), 5)


def busy_and_streaming(seen: list[object]) -> bool:
    """Progress reported after the first 503's retry delay is over."""
    retry = next((e for e in seen if isinstance(e, RetryScheduled) and e.status == 503), None)
    if retry is None:
        return False
    resumed = retry.ts + retry.delay + 0.2
    return any(isinstance(e, FileProgress) and e.ts > resumed for e in seen)


# ----------------------------------------------------------------- work stealing
async def test_a_stolen_segment_stops_the_thread_at_the_new_end(sim: Simulator, part: Part) -> None:
    file = medium(sim)
    sim.faults.set(file.id, per_connection_rate=512 * KiB)
    loop = asyncio.get_running_loop()
    seg = Segment(0, file.size, 0)
    reported: list[int] = []
    new_end = 0

    def steal(n: int) -> None:  # on the loop, as Transfer._landed and RangeSet do
        nonlocal new_end
        reported.append(n)
        if not new_end:
            new_end = seg.end = sum(reported) + 128 * KiB

    stream = RangeStream(timeout=10.0, buffer_size=64 * KiB)
    landed = partial(loop.call_soon_threadsafe, steal)
    started = time.monotonic()
    outcome = await fetch(stream, sim.signed_url(file.id), part, seg, landed=landed)
    assert outcome is Outcome.DONE and time.monotonic() - started < 3
    # At most one read in flight when the end moved may pass it.
    assert new_end <= sum(reported) <= new_end + 64 * KiB
    assert not stream.is_open  # the rest of the body was never read: not reusable
    assert await only_the_probe_left(sim)


# -------------------------------------------------------------------- keep-alive
@pytest.mark.parametrize("zero_copy", [True, False], ids=["spliced", "copied"])
async def test_requests_reuse_one_kept_alive_connection(
    sim: Simulator, part: Part, zero_copy: bool
) -> None:
    """Four ranges, three of them mid-file, land byte-exact on either data path."""
    file = medium(sim)
    url = sim.signed_url(file.id)
    stream = RangeStream(timeout=10.0, buffer_size=256 * KiB, zero_copy=zero_copy)
    step = -(-file.size // 4)
    answers = []
    for start in range(0, file.size, step):
        seg = Segment(start, min(file.size, start + step), start)
        headers = {"Range": f"bytes={seg.start}-{seg.end - 1}"}
        answers.append(await stream.run(partial(stream.request, url, headers)))
        outcome = await stream.run(
            partial(
                stream.pump,
                part.fd,
                seg,
                seg.start,
                seg.end,
                where=part.path,
                landed=lambda n: None,
                stop_wanted=lambda: False,
                min_speed=0,
                window=30.0,
            )
        )
        assert outcome is Outcome.DONE and stream.is_open
    stream.close()
    assert [a.new_connection for a in answers] == [True, False, False, False]
    assert sim.stats.max_open_connections == 1
    with open(part.path, "rb") as written:
        assert file.sha256.lower() == hashlib.sha256(written.read()).hexdigest()


async def test_a_download_opens_fewer_connections_than_requests(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 3 * MiB, 8 * MiB)
    answers: list[bool] = []
    settings = fast_settings(connections=3, min_split=128 * KiB)
    settings.stream_observer = lambda host, ttfb, new: answers.append(new)
    # A connection is reused when its worker read a whole range and takes the next one; a
    # range cut short by a steal closes it. Which way each goes depends on scheduling (under
    # CPU load every request of one download can be cut short), so a few downloads are
    # allowed before reuse must have shown.
    async with downloader(settings) as dl:
        for attempt in range(5):
            result = await dl.download(request_for(sim, file, dest / str(attempt)))
            assert result.status == "completed" and result.verified, result.error
            assert result.fetched_bytes == file.size
            if sum(answers) < len(answers):
                break
    assert len(answers) >= 3 and sum(answers) < len(answers)


# --------------------------------------------------------------------------- TLS
@pytest.fixture
async def tls_origin(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An HTTPS origin on 127.0.0.1 with a fresh self-signed certificate: (url, cert)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def body(request: web.Request) -> web.Response:
        return web.Response(status=206, body=b"0123", headers={"Content-Range": "bytes 0-3/4"})

    app = web.Application()
    app.router.add_get("/f", body)
    async with serve_app(app, ssl_context=context) as port:
        yield f"https://127.0.0.1:{port}/f", cert


async def test_an_untrusted_certificate_is_refused(tls_origin: tuple[str, Path]) -> None:
    url, _ = tls_origin
    stream = RangeStream(timeout=5.0, buffer_size=64 * KiB)
    with pytest.raises(CivitaiTuiError) as caught:
        await stream.run(partial(stream.request, url, {"Range": "bytes=0-3"}))
    assert caught.value.kind is FailureKind.BAD_CONFIG  # not retried: it cannot help
    assert "certificate of 127.0.0.1:" in caught.value.message
    assert "is not trusted" in caught.value.message and "network.ca_bundle" in caught.value.message
    assert not stream.is_open


async def test_a_trusted_certificate_is_accepted(
    tls_origin: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``SSL_CERT_FILE`` is read when the process's network is first used (a fresh one here)."""
    url, cert = tls_origin
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    stream = RangeStream(timeout=5.0, buffer_size=64 * KiB)
    answer = await stream.run(partial(stream.request, url, {"Range": "bytes=0-3"}))
    stream.close()
    assert answer.status == 206 and answer.new_connection


def test_no_code_turns_certificate_checks_off() -> None:
    """No ``ssl=False``, ``verify_mode = CERT_NONE``, ``check_hostname = False`` or
    ``ssl._create_unverified_context`` anywhere in the package."""
    package = Path(civitai_tui.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "ssl":
                bad = isinstance(node.value, ast.Constant) and node.value.value is False
            elif isinstance(node, ast.Attribute):
                bad = node.attr in ("CERT_NONE", "_create_unverified_context") or (
                    node.attr == "check_hostname" and isinstance(node.ctx, ast.Store)
                )
            else:
                bad = False
            if bad:
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


# ------------------------------------------------------------- stalls, trickles
@pytest.mark.parametrize("zero_copy", [True, False], ids=["spliced", "copied"])
async def test_a_stall_is_detected_on_the_thread(
    sim: Simulator, part: Part, zero_copy: bool
) -> None:
    file = medium(sim)
    sim.faults.set(file.id, stall_after_bytes=100 * KiB, stall_seconds=60)
    stream = RangeStream(timeout=0.4, buffer_size=64 * KiB, zero_copy=zero_copy)
    started = time.monotonic()
    with pytest.raises(CivitaiTuiError) as caught:
        await fetch(stream, sim.signed_url(file.id), part, Segment(0, file.size, 0))
    assert caught.value.kind is FailureKind.STALLED and "no data" in caught.value.message
    assert time.monotonic() - started < 5 and not stream.is_open
    await asyncio.wait_for(sim.close(), 5)


async def test_a_trickle_is_detected_on_the_thread(sim: Simulator, part: Part) -> None:
    file = medium(sim)
    sim.faults.set(file.id, trickle_after_bytes=64 * KiB, trickle_rate=4 * KiB)
    stream = RangeStream(timeout=10.0, buffer_size=64 * KiB)
    with pytest.raises(CivitaiTuiError) as caught:
        await fetch(
            stream,
            sim.signed_url(file.id),
            part,
            Segment(0, file.size, 0),
            min_speed=64 * KiB,
            window=0.3,
        )
    assert caught.value.kind is FailureKind.STALLED and "too slow" in caught.value.message
    assert not stream.is_open
    await asyncio.wait_for(sim.close(), 5)


async def test_close_while_a_call_runs_is_refused(sim: Simulator, part: Part) -> None:
    file = medium(sim)
    sim.faults.set(file.id, per_connection_rate=256 * KiB)
    stream = RangeStream(timeout=10.0, buffer_size=64 * KiB)
    started, landed = first_bytes_event()
    task = asyncio.create_task(
        fetch(stream, sim.signed_url(file.id), part, Segment(0, file.size, 0), landed=landed)
    )
    await asyncio.wait_for(started.wait(), 10)
    with pytest.raises(RuntimeError, match="while a call is using it"):
        stream.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not stream.is_open
