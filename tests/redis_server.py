"""A real Valkey/Redis server per test (or per module) on a Unix socket, for fleet tests.

``redis_server`` starts one for the test; ``redis_factory(aof=True, password=...)`` starts
more (or with persistence, or with an ACL user). When neither ``valkey-server`` nor
``redis-server`` is installed the test is skipped with the reason (``.ci/run`` installs
one). The socket lives in a short private temp folder: ``sun_path`` holds 107 bytes,
less than a deep pytest ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BINARIES = ("valkey-server", "redis-server")
START_SECONDS = 20.0


def server_binary() -> str | None:
    """The first of ``valkey-server``/``redis-server`` on PATH, or None."""
    return next((b for b in BINARIES if shutil.which(b)), None)


@dataclass
class RedisServer:
    """One server process; ``url`` reaches it (credentials in it when it has a password)."""

    binary: str
    folder: Path
    aof: bool = False
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.folder / "redis.sock"

    @property
    def url(self) -> str:
        who = f"{self.user or ''}:{self.password}@" if self.password else ""
        return f"unix://{who}{self.socket}"

    def config_text(self) -> str:
        lines = [
            "port 0",
            f"unixsocket {self.socket}",
            "unixsocketperm 700",
            f"dir {self.folder}",
            'save ""',
            f"appendonly {'yes' if self.aof else 'no'}",
            "appendfsync always" if self.aof else "",
            f"logfile {self.folder / 'server.log'}",
        ]
        if self.password and self.user:
            lines += ["user default off", f"user {self.user} on >{self.password} ~* &* +@all"]
        elif self.password:
            lines.append(f"requirepass {self.password}")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start the server and wait until it answers PING on its socket."""
        conf = self.folder / "redis.conf"
        conf.write_text(self.config_text())
        conf.chmod(0o600)
        self.process = subprocess.Popen(  # the config file, never argv: the password stays off ps
            [self.binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.binary} exited: {self.log()}")
            if self._answers():
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.binary} did not answer within {START_SECONDS} s: {self.log()}")

    def _answers(self) -> bool:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1)
            sock.connect(str(self.socket))
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64)
            return answer.startswith((b"+PONG", b"-NOAUTH", b"-NOPERM"))
        return False

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGKILL with ``kill``: an abrupt crash)."""
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=20)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


Factory = Callable[..., RedisServer]


@contextlib.contextmanager
def _servers() -> Iterator[Factory]:
    binary = server_binary()
    if binary is None:
        pytest.skip("no valkey-server or redis-server on PATH (.ci/run installs redis-server)")
    started: list[RedisServer] = []
    folders: list[str] = []

    def make(*, aof: bool = False, user: str | None = None, password: str | None = None):
        folder = tempfile.mkdtemp(prefix="rds", dir="/tmp")
        folders.append(folder)
        server = RedisServer(binary, Path(folder), aof=aof, user=user, password=password)
        server.start()
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop(kill=True)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_factory() -> Iterator[Factory]:
    """Start servers for this test: ``redis_factory(aof=True, user="u", password="p")``."""
    with _servers() as make:
        yield make


@pytest.fixture
def redis_server(redis_factory: Factory) -> RedisServer:
    """A fresh server for this test (no persistence, no password)."""
    return redis_factory()


@pytest.fixture(scope="module")
def module_redis_server() -> Iterator[RedisServer]:
    """One server shared by a module's tests (flush it between them if they need a clean one)."""
    with _servers() as make:
        yield make()
