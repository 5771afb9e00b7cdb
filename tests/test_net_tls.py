"""TLS with the simulator's private CA: trusted via network.ca_bundle or SSL_CERT_FILE, a
wrong CA refused with a message that says how to fix it, resume across a TLS reset."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import http.client
import select
import socket
import struct
import termios
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme
from test_cli_get import ordinary_models, run_cli
from test_download_support import downloader, fast_settings, pick, request_for

from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.download.tls_batch import TlsBatch
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.net.network import Network, install
from civitai_tui.net.tls import client_context
from civitai_tui.simulator.server import Simulator
from tests.helpers import TOKEN

MiB = 1 << 20


def _host(url: str) -> str:
    return url.split("://", 1)[1]


async def test_verified_download_over_tls_with_the_ca_bundle(
    tls_sim: Simulator, tmp_path: Path
) -> None:
    assert tls_sim.ca is not None and tls_sim.storage_url.startswith("https://")
    install(Network(ca_bundle=tls_sim.ca.ca_file))
    file = pick(tls_sim, 3 * MiB, 16 * MiB)
    async with downloader(fast_settings()) as dl:
        result = await dl.download(request_for(tls_sim, file, tmp_path))
    assert result.status == "completed" and result.verified, result.error
    assert result.path is not None
    assert hashlib.sha256(result.path.read_bytes()).hexdigest() == file.sha256.lower()
    assert result.connections > 1  # the threaded range path ran over TLS too


async def test_get_trusts_ssl_cert_file_and_ca_bundle_from_config(
    tls_sim: Simulator, tmp_path: Path
) -> None:
    assert tls_sim.ca is not None
    model = f"model:{ordinary_models(tls_sim, 1)[0]}"
    env = {"SSL_CERT_FILE": str(tls_sim.ca.ca_file)}
    code, summary, err = await run_cli(
        tmp_path / "a", tls_sim, "get", model, "-d", str(tmp_path / "a-m"), "--json", env=env
    )
    assert code == 0 and isinstance(summary, dict) and summary["ok"], (summary, err)
    home = tmp_path / "b"
    home.mkdir()
    (home / "config.toml").write_text(f'[network]\nca_bundle = "{tls_sim.ca.ca_file}"\n')
    code, summary, err = await run_cli(
        home, tls_sim, "get", model, "-d", str(tmp_path / "b-m"), "--json"
    )
    assert code == 0 and isinstance(summary, dict) and summary["ok"], (summary, err)


async def test_a_wrong_ca_is_refused_naming_host_reason_and_fix(
    tls_sim: Simulator, tmp_path: Path
) -> None:
    other = trustme.CA()
    wrong = tmp_path / "other-ca.pem"
    other.cert_pem.write_to_path(str(wrong))
    install(Network(ca_bundle=wrong))
    async with CivitAIClient(tls_sim.api_url, TOKEN) as client:
        with pytest.raises(CivitaiTuiError) as caught:
            await client.get_model(ordinary_models(tls_sim, 1)[0])
    for message in (caught.value.message,):
        assert f"the TLS certificate of {_host(tls_sim.api_url)} is not trusted" in message
        assert "unable to get local issuer certificate" in message
        assert "network.ca_bundle" in message and "SSL_CERT_FILE" in message
    assert caught.value.kind is FailureKind.BAD_CONFIG  # not retried: retrying cannot help
    file = pick(tls_sim, 1 * MiB, 4 * MiB)
    async with downloader(fast_settings()) as dl:
        result = await dl.download(request_for(tls_sim, file, tmp_path))
    assert result.status == "failed" and result.error is not None
    assert f"the TLS certificate of {_host(tls_sim.storage_url)} is not trusted" in (
        result.error.message
    )
    assert result.retries == 0 and not list(tmp_path.glob("*.safetensors"))


def test_an_unreadable_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate")
    for bundle in (tmp_path / "missing.pem", tmp_path / "junk.pem"):
        with pytest.raises(CivitaiTuiError, match=r"network\.ca_bundle: cannot load"):
            install(Network(ca_bundle=bundle))


async def test_resume_across_a_tls_reset(tls_sim: Simulator, tmp_path: Path) -> None:
    assert tls_sim.ca is not None
    install(Network(ca_bundle=tls_sim.ca.ca_file))
    file = pick(tls_sim, 1 * MiB, 3 * MiB)
    tls_sim.faults.set(file.id, reset_after_bytes=200 * 1024)
    async with downloader(fast_settings()) as dl:
        result = await dl.download(request_for(tls_sim, file, tmp_path))
    assert result.status == "completed" and result.verified, result.error
    assert result.retries >= 1
    assert result.fetched_bytes == file.size  # resumed at the written offsets, nothing twice


async def test_a_tls_batch_lands_many_records_per_write(tls_sim: Simulator) -> None:
    """``SSL_read`` gives one 16 KiB record per call; a batch takes every record the socket
    already holds, so a TLS body costs one ``pwrite`` per batch, not per record."""
    assert tls_sim.ca is not None
    file = pick(tls_sim, 3 * MiB, 16 * MiB)
    url = urlsplit(tls_sim.signed_url(file.id))
    context = client_context(tls_sim.ca.ca_file)

    def fetch() -> int:
        conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=10, context=context)
        conn.request("GET", f"{url.path}?{url.query}", headers={"Range": "bytes=0-2097151"})
        resp = conn.getresponse()
        assert resp.status == 206 and resp.fp is not None
        resp.fp.read(len(resp.fp.peek()))  # the buffered reader's share
        sock = conn.sock
        deadline = time.monotonic() + 10
        while _queued(sock) < 512 * 1024 and time.monotonic() < deadline:
            select.select([sock], [], [], 0.05)
        batch = TlsBatch(sock)
        n = batch.read(memoryview(bytearray(1 << 20)))
        conn.close()
        return n

    assert await asyncio.to_thread(fetch) > 4 * 16 * 1024


def _queued(sock: socket.socket) -> int:
    """Bytes waiting in the kernel's receive queue of ``sock`` (still encrypted)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
