"""One test per storage fault knob of the simulator: the downloader's outcome for each."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import aiohttp
import pytest
from test_download_support import (
    CountingResolver,
    KiB,
    MiB,
    dest_fixture,  # noqa: F401 - the ``dest`` fixture
    downloader,
    fast_settings,
    leftovers,
    pick,
    request_for,
)

from civitai_tui.download.retry import RetryPolicy
from civitai_tui.errors import FailureKind
from civitai_tui.events import EventBus, FileFailed, RetryScheduled
from civitai_tui.simulator.server import Simulator


def assert_good(result, file) -> None:
    assert result.status == "completed", result.error
    assert result.verified and result.sha256 == file.sha256.lower()
    assert result.path.stat().st_size == file.size


def assert_nothing_placed(dest: Path, name: str) -> None:
    assert not (dest / name).exists()


async def test_per_connection_rate_cap_uses_more_connections(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 2 * MiB, 4 * MiB)
    rate = 1 * MiB
    sim.faults.set(file.id, per_connection_rate=rate)
    async with downloader(fast_settings(connections=8)) as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)
    assert result.connections >= 6
    assert result.duration < 0.6 * file.size / rate  # one capped connection would take longer


async def test_total_rate_cap_is_respected(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 512 * KiB, 1 * MiB)
    rate = 2 * MiB
    sim.faults.set(file.id, total_rate=rate)
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)
    assert result.duration >= 0.5 * file.size / rate


async def test_first_byte_latency(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 256 * KiB, 1 * MiB)
    sim.faults.set(file.id, first_byte_latency=0.3)
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)
    assert result.duration >= 0.3 and result.retries == 0


async def test_reset_mid_body_resumes_the_segment(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 1 * MiB, 3 * MiB)
    sim.faults.set(file.id, reset_after_bytes=200 * KiB)
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)
    assert result.retries >= 1
    assert result.fetched_bytes == file.size  # resumed from written offsets, nothing twice


async def test_stall_is_detected_and_the_range_refetched(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 1 * MiB, 3 * MiB)
    sim.faults.set(file.id, stall_after_bytes=100 * KiB, stall_seconds=60)
    async with downloader(fast_settings(stall_timeout=0.4)) as dl:
        started = time.monotonic()
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)
    assert result.retries >= 1 and time.monotonic() - started < 15


async def test_trickling_connection_is_dropped(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 1 * MiB, 3 * MiB)
    sim.faults.set(file.id, trickle_after_bytes=64 * KiB, trickle_rate=2 * KiB)
    bus = EventBus()
    events = bus.subscribe()
    settings = fast_settings(min_speed=64 * KiB, min_speed_window=0.3)
    async with downloader(settings, bus) as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)
    reasons = [e.reason for e in events.drain() if isinstance(e, RetryScheduled)]
    assert any("too slow" in r for r in reasons)


@pytest.mark.slow
@pytest.mark.parametrize("status", [429, 503])
async def test_busy_with_retry_after_waits_at_least_that_long(
    sim: Simulator, dest: Path, status: int
) -> None:
    file = pick(sim, 64 * KiB, 512 * KiB)
    sim.faults.set(file.id, fail_status=status, fail_count=1, retry_after=1)
    bus = EventBus()
    events = bus.subscribe()
    async with downloader(bus=bus) as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)
    retries = [e for e in events.drain() if isinstance(e, RetryScheduled)]
    assert retries and retries[0].status == status and retries[0].delay >= 1.0
    assert result.duration >= 1.0


async def test_not_found_is_not_retried(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 64 * KiB, 512 * KiB)
    sim.faults.set(file.id, fail_status=404, fail_count=5)
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert result.status == "failed" and result.error is not None
    assert result.error.kind is FailureKind.NOT_FOUND and result.retries == 0
    assert sim.faults.for_file(file.id).fail_count == 4  # exactly one request
    assert_nothing_placed(dest, file.name)


@pytest.mark.slow
async def test_max_connections_503_shrinks_and_completes(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 2 * MiB, 4 * MiB)
    sim.faults.set(file.id, max_connections=2, per_connection_rate=4 * MiB)
    settings = fast_settings(connections=4)
    settings.retry = RetryPolicy(max_attempts=6, base_delay=0.05, cap=1.5)
    async with downloader(settings) as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)
    assert result.retries >= 1


async def test_ignored_range_falls_back_to_one_stream(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 1 * MiB, 3 * MiB)
    sim.faults.set(file.id, ignore_range=True)
    async with downloader(fast_settings(connections=6)) as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)
    assert result.connections == 1 and result.fetched_bytes == file.size


@pytest.mark.parametrize("knob", ["wrong_content_length", "wrong_content_range", "gzip_ranged"])
async def test_lying_headers_fail_clearly_and_place_nothing(
    sim: Simulator, dest: Path, knob: str
) -> None:
    file = pick(sim, 512 * KiB, 1 * MiB)
    sim.faults.set(file.id, **{knob: True})
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert result.status == "failed" and result.error is not None
    assert result.error.kind is FailureKind.PROTOCOL and result.retries >= 1
    assert result.fetched_bytes == 0  # not one byte of a bad answer was written
    assert_nothing_placed(dest, file.name)


async def test_etag_change_restarts_on_the_new_content(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 1 * MiB, 3 * MiB)
    sim.faults.set(file.id, etag_change_after_requests=2)
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest, verify=False))
    assert result.status == "completed", result.error
    async with (
        aiohttp.ClientSession() as session,
        session.get(sim.signed_url(file.id)) as resp,
    ):
        fresh = await resp.read()
    assert hashlib.sha256(fresh).hexdigest() != file.sha256.lower()  # it really changed
    assert result.path is not None and result.path.read_bytes() == fresh


async def test_corrupt_body_is_quarantined(sim: Simulator, dest: Path, isolated_home: Path) -> None:
    file = pick(sim, 256 * KiB, 1 * MiB)
    sim.faults.set(file.id, corrupt=True)
    bus = EventBus()
    events = bus.subscribe()
    async with downloader(bus=bus) as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert result.status == "failed" and result.error is not None
    assert result.error.kind is FailureKind.HASH_MISMATCH
    assert result.quarantined is not None and result.quarantined.exists()
    assert result.quarantined.parent == isolated_home / "quarantine"
    assert leftovers(dest) == []
    failed = [e for e in events.drain() if isinstance(e, FileFailed)]
    assert failed and failed[0].quarantined == str(result.quarantined)


async def test_html_instead_of_file_is_bad_content(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 64 * KiB, 512 * KiB)
    sim.faults.set(file.id, html_body=True)
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert result.status == "failed" and result.error is not None
    assert result.error.kind is FailureKind.BAD_CONTENT
    assert "CIVITAI_API_KEY" in result.error.message
    assert_nothing_placed(dest, file.name)


async def test_expired_signed_url_is_resolved_again_once(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 256 * KiB, 1 * MiB)
    resolver = CountingResolver([sim.signed_url(file.id, ttl=-60), sim.signed_url(file.id)])
    async with downloader(resolve=resolver) as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)
    assert len(resolver.calls) == 2


async def test_link_refused_twice_fails_forbidden(sim: Simulator, dest: Path) -> None:
    file = pick(sim, 64 * KiB, 512 * KiB)
    resolver = CountingResolver([sim.signed_url(file.id, ttl=-60)])
    async with downloader(resolve=resolver) as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert result.status == "failed" and result.error is not None
    assert result.error.kind is FailureKind.FORBIDDEN and len(resolver.calls) == 2


async def test_a_revoked_unexpired_link_is_replaced_by_a_fresh_one(
    sim: Simulator, dest: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Storage refusing a link that has not expired (revoked, clock skew): resolve again."""
    caplog.set_level(logging.INFO, logger="civitai_tui.download")
    file = pick(sim, 256 * KiB, 1 * MiB)
    revoked = sim.signed_url(file.id)
    sim.faults.set(file.id, revoked=frozenset({revoked.rsplit("sig=", 1)[1]}))
    resolver = CountingResolver([revoked, sim.signed_url(file.id, ttl=3600)], time.time() + 3600)
    async with downloader(resolve=resolver) as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)
    assert len(resolver.calls) == 2
    assert "storage refused the link" in caplog.text and "HTTP 403" in caplog.text
    assert "sig=" not in caplog.text


@pytest.mark.parametrize("status", [401, 410])
async def test_401_and_410_from_storage_also_get_a_fresh_link(
    sim: Simulator, dest: Path, status: int
) -> None:
    file = pick(sim, 64 * KiB, 512 * KiB)
    sim.faults.set(file.id, fail_status=status, fail_count=1)
    urls = [sim.signed_url(file.id), sim.signed_url(file.id, ttl=7200)]
    resolver = CountingResolver(urls, time.time() + 3600)
    async with downloader(resolve=resolver) as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)
    assert len(resolver.calls) == 2


def test_a_link_counts_as_expired_a_safety_margin_before_its_expiry() -> None:
    from civitai_tui.download.request import LINK_MARGIN, ResolvedURL

    now = time.time()
    day = ResolvedURL("u", expires_at=now + LINK_MARGIN - 5, resolved_at=now - 86400)
    assert day.expired()  # a long-lived link: minutes ahead
    assert not ResolvedURL("u", expires_at=now + LINK_MARGIN + 60, resolved_at=now).expired()
    short = ResolvedURL("u", expires_at=now + 60, resolved_at=now)
    assert not short.expired()  # a one-minute link is usable: the margin is a tenth of it
    assert ResolvedURL("u", expires_at=now + 5, resolved_at=now - 55).expired()


async def test_a_control_file_left_beside_a_finished_file_is_removed(
    sim: Simulator, dest: Path
) -> None:
    """A kill between the final rename and the control file's removal leaves only the .ctl."""
    file = pick(sim, 64 * KiB, 512 * KiB)
    async with downloader() as dl:
        assert (await dl.download(request_for(sim, file, dest))).status == "completed"
        stale = dest / f"{file.name}.part.ctl"
        stale.write_text('{"version": 1, "size": 1, "done": []}')
        again = await dl.download(request_for(sim, file, dest))
    assert again.status == "skipped"
    assert leftovers(dest) == [file.name]


async def test_malicious_checkpoint_is_quarantined_with_the_global_named(
    sim: Simulator, dest: Path
) -> None:
    file = sim.catalogue.file(sim.catalogue.specials.malicious_ckpt.file_id)
    assert file is not None
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert result.status == "failed" and result.error is not None
    assert result.error.kind is FailureKind.UNSAFE
    assert "posix.system" in result.error.message
    assert result.quarantined is not None and leftovers(dest) == []


async def test_clean_checkpoint_passes_the_scan(sim: Simulator, dest: Path) -> None:
    file = sim.catalogue.file(sim.catalogue.specials.clean_ckpt.file_id)
    assert file is not None
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest))
    assert_good(result, file)


async def test_danger_flag_refuses_before_any_byte(sim: Simulator, dest: Path) -> None:
    file = sim.catalogue.file(sim.catalogue.specials.danger_flagged.file_id)
    assert file is not None
    before = sim.stats.storage_requests
    async with downloader() as dl:
        result = await dl.download(request_for(sim, file, dest, remote_scans=("Danger", "Success")))
    assert result.status == "failed" and result.error is not None
    assert result.error.kind is FailureKind.UNSAFE
    assert sim.stats.storage_requests == before and leftovers(dest) == []
