"""Starts the simulator: an API origin and a separate storage origin on loopback.

``start_simulator`` is what tests and ``civitai-tui demo`` use; ``serve_forever``
backs ``civitai-tui simulator``. Both origins share one catalogue, fault board and
stats object, exposed on :class:`Simulator`. With ``tls`` the storage origin (and
with ``tls="all"`` the API origin too) serves HTTPS with a certificate from a
throwaway CA (:mod:`civitai_tui.simulator.tls`) whose PEM is ``Simulator.ca_file``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from civitai_tui.simulator.api import ApiOrigin, DownloadPolicy
from civitai_tui.simulator.catalogue import Catalogue
from civitai_tui.simulator.control import Control
from civitai_tui.simulator.faults import ApiFaults, FaultBoard
from civitai_tui.simulator.gallery import GALLERY_MODELS
from civitai_tui.simulator.generate import REGULAR_MODELS, build_catalogue
from civitai_tui.simulator.render import Origins
from civitai_tui.simulator.signing import UrlSigner
from civitai_tui.simulator.stats import SimulatorStats
from civitai_tui.simulator.storage import StorageOrigin
from civitai_tui.simulator.tls import SimulatorCA


@dataclass
class Simulator:
    """A running simulator; ``close()`` stops both origins."""

    api_url: str  # the API origin (CIVITAI_BASE_URL points here)
    storage_url: str  # the storage origin signed URLs point at
    catalogue: Catalogue
    faults: FaultBoard  # storage-origin knobs
    api_faults: ApiFaults  # API-origin knobs
    stats: SimulatorStats
    tokens: set[str]  # accepted API tokens (mutable at run time)
    signer: UrlSigner = field(repr=False)
    #: The CA to trust when an origin serves HTTPS (``SSL_CERT_FILE``, ``network.ca_bundle``).
    ca: SimulatorCA | None = None
    _runners: list[web.AppRunner] = field(default_factory=list, repr=False)

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        if self.ca is not None:
            shutil.rmtree(self.ca.directory, ignore_errors=True)

    def client_env(self, home: Path, token: str) -> dict[str, str]:
        """The environment of a ``civitai-tui`` child using this simulator, state in ``home``."""
        return {
            **os.environ,
            "CIVITAI_TUI_HOME": str(home),
            "CIVITAI_BASE_URL": self.api_url,
            "CIVITAI_API_KEY": token,
        }

    def signed_url(self, file_id: int, ttl: float = 86400) -> str:
        """A valid signed storage URL for ``file_id`` (skips ``/api/download``)."""
        file = self.catalogue.file(file_id)
        if file is None:
            raise KeyError(f"no simulated file with id {file_id}")
        return self.signer.url(file_id, file.name, ttl)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _origin(host: str, sock: socket.socket, secure: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if secure else 'http'}://{shown}:{sock.getsockname()[1]}"


async def _serve(
    app: web.Application, sock: socket.socket, tls: ssl.SSLContext | None = None
) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=tls).start()
    return runner


async def start_simulator(
    *,
    seed: int = 1,
    host: str = "127.0.0.1",
    api_port: int = 0,
    storage_port: int = 0,
    tokens: set[str] | None = None,
    require_token: bool = True,
    daily_quota: int = 10_000,
    url_ttl: float = 86400,
    regular_models: int | None = None,
    file_size: int | None = None,
    gallery: int = 0,
    tls: Literal["storage", "all"] | None = None,
) -> Simulator:
    """Start both origins (port 0 = an ephemeral port) and return the handle.

    ``tls``: which origins serve HTTPS (``"storage"`` or ``"all"``); None: plain HTTP.
    """
    ca = SimulatorCA.temporary() if tls else None
    server_tls = ca.server_context() if ca else None
    api_tls = server_tls if tls == "all" else None
    api_sock, storage_sock = _bind(host, api_port), _bind(host, storage_port)
    origins = Origins(
        _origin(host, api_sock, api_tls is not None), _origin(host, storage_sock, ca is not None)
    )
    sim = Simulator(
        api_url=origins.api_url,
        storage_url=origins.storage_url,
        catalogue=build_catalogue(
            seed,
            regular_models=regular_models or REGULAR_MODELS,
            file_size=file_size,
            gallery=gallery,
        ),
        faults=FaultBoard(),
        api_faults=ApiFaults(),
        stats=SimulatorStats(),
        tokens=tokens if tokens is not None else set(),
        signer=UrlSigner(origins.storage_url),
        ca=ca,
    )
    policy = DownloadPolicy(sim.tokens, require_token, daily_quota, url_ttl)
    storage = StorageOrigin(sim.catalogue, sim.signer, sim.faults, sim.stats)
    control = Control(sim.faults, sim.api_faults, sim.stats)
    api = ApiOrigin(sim.catalogue, origins, sim.signer, policy, sim.api_faults, sim.stats)
    try:
        storage_runner = await _serve(storage.app(), storage_sock, server_tls)
        sim._runners.append(storage_runner)
        storage.count_connections = lambda: len(storage_runner.server.connections)
        sim._runners.append(await _serve(api.app(control.routes()), api_sock, api_tls))
    except BaseException:
        await sim.close()
        raise
    return sim


def serve_forever(
    *, host: str, api_port: int, storage_port: int, seed: int, faults: dict[str, Any] | None = None
) -> None:
    """Run the simulator until Ctrl-C or SIGTERM (``civitai-tui simulator``).

    ``faults``: storage knobs (:class:`Faults` fields) for every file.
    """
    token = secrets.token_hex(16)

    async def main() -> None:
        sim = await start_simulator(
            seed=seed,
            host=host,
            api_port=api_port,
            storage_port=storage_port,
            tokens={token},
            gallery=GALLERY_MODELS,
        )
        knobs = {k: v for k, v in (faults or {}).items() if v}
        if knobs:
            sim.faults.set(**knobs)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(f"CivitAI simulator (seed {seed}, {len(sim.catalogue.models)} models)", flush=True)
        print(f"  API origin:     {sim.api_url}", flush=True)
        print(f"  storage origin: {sim.storage_url}", flush=True)
        if knobs:
            print(f"  storage faults: {knobs}", flush=True)
        print(f"  demo token:     {token}", flush=True)
        print(f"  export CIVITAI_BASE_URL={sim.api_url} CIVITAI_API_KEY={token}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        try:
            await stop.wait()
        finally:
            await sim.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
