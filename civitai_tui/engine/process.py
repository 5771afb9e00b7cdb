"""The engine process: one per state dir, started in the foreground or the background.

* ``run_engine`` runs it in the foreground: takes the state dir's lock (a second
  engine is refused with the pid of the first), serves the control API, and on
  SIGTERM/SIGINT or ``engine stop`` saves checkpoints, leaves running jobs
  PENDING and exits.
* ``ensure_engine`` is what the TUI and the queue commands call: it returns at
  once when an engine answers, else starts one in the background (its own
  session, so it outlives the terminal) and waits until it answers.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from civitai_tui.config import Environment
from civitai_tui.engine.client import EngineClient
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.logs import setup_logging
from civitai_tui.private import open_private_append, private_dir

START_TIMEOUT = 15.0
#: How long a stopping engine lets requests in flight finish before cutting them.
SHUTDOWN_SECONDS = 3.0


@dataclass(frozen=True)
class EnginePaths:
    """The engine's files inside a state dir."""

    state_dir: Path

    @property
    def socket(self) -> Path:
        return self.state_dir / "engine.sock"

    @property
    def lock(self) -> Path:
        return self.state_dir / "engine.lock"

    @property
    def log(self) -> Path:
        return self.state_dir / "logs" / "engine.out"


def _take_lock(paths: EnginePaths) -> int:
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise CivitaiTuiError(
            FailureKind.ENGINE,
            f"an engine is already running for {paths.state_dir} (pid {pid}); "
            "stop it with `civitai-tui engine stop`",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _lock_held(paths: EnginePaths) -> bool:
    """True while some engine process holds the state dir's lock."""
    try:
        fd = os.open(paths.lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also releases a lock we just took
    return False


async def run_engine(
    state_dir: Path,
    *,
    allow_http: bool = False,
    tcp: tuple[str, int] | None = None,
    token: str | None = None,
) -> None:
    """Run the engine until a signal or ``engine stop``."""
    from civitai_tui.engine.core import Engine
    from civitai_tui.engine.server import start_api

    paths = EnginePaths(state_dir)
    lock_fd = _take_lock(paths)
    try:
        setup_logging(state_dir)
        engine = Engine(state_dir, allow_http=allow_http)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, engine.request_stop)
        await engine.start()
        runner = await start_api(
            engine, paths.socket, tcp=tcp, token=token, shutdown_timeout=SHUTDOWN_SECONDS
        )
        try:
            await engine.wait_stopped()
        finally:
            await engine.stop()
            await runner.cleanup()
            paths.socket.unlink(missing_ok=True)
    finally:
        os.close(lock_fd)


async def engine_answers(paths: EnginePaths) -> bool:
    if not paths.socket.exists():
        return False
    try:
        async with EngineClient(paths.socket) as client:
            await client.status()
    except CivitaiTuiError:
        return False
    return True


async def ensure_engine(state_dir: Path, *, allow_http: bool = False) -> Path:
    """The socket of a running engine for ``state_dir``, starting one if needed.

    When this process has ``CIVITAI_API_KEY`` and the engine has no token (it was
    started from a shell without one), the token is handed over on the socket.
    """
    paths = EnginePaths(state_dir)
    if not await engine_answers(paths):
        await _start_engine(paths, allow_http)
    token = Environment.from_env().api_key
    if token:
        async with EngineClient(paths.socket) as client:
            if not (await client.status()).get("token"):
                await client.hand_over_token(token)
    return paths.socket


async def _start_engine(paths: EnginePaths, allow_http: bool) -> None:
    private_dir(paths.log.parent)
    command = [sys.executable, "-m", "civitai_tui", "engine"]
    if allow_http:
        command.append("--allow-http")
    with open_private_append(paths.log) as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            env={**os.environ, "CIVITAI_TUI_HOME": str(paths.state_dir)},
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if await engine_answers(paths):
            return
        if proc.poll() is not None and not _lock_held(paths):
            raise CivitaiTuiError(
                FailureKind.ENGINE,
                f"the engine exited at start (status {proc.returncode}); see {paths.log}",
            )
        await asyncio.sleep(0.05)
    raise CivitaiTuiError(
        FailureKind.ENGINE,
        f"the engine did not answer within {START_TIMEOUT:.0f} s; see {paths.log}",
    )
