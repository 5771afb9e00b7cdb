"""HTTPS for the bench: nginx serving the corpus with a throwaway CA, and the loopback proxy.

:class:`NginxProcess` has the interface of :class:`bench.server.ServerProcess`
(``pid``, ``url(name)``, a context manager): nginx 1.x in its own process group,
TLS 1.3 with a certificate from :class:`~civitai_tui.simulator.tls.SimulatorCA`,
keep-alive, ``limit_rate`` per request when capped (each of our connections
makes one request at a time, so it caps the connection). Clients are given the
CA as users give a private one (``SSL_CERT_FILE``, curl ``--cacert``, aria2c
``--ca-certificate``).

:class:`ProxyProcess` runs ``civitai_tui.simulator.proxy`` for the through-proxy
profile; every tool is pointed at it with ``https_proxy`` (curl, aria2c and we
all read it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.server import REPO_ROOT
from civitai_tui.simulator.tls import SimulatorCA

NGINX_CONF = """
{user}
worker_processes {workers};
daemon off;
master_process on;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    types {{ }}
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pem};
        ssl_certificate_key {pem};
        ssl_protocols TLSv1.3;
        ssl_buffer_size 16k;
        location /files/ {{
            alias {root}/;
            {limit}
        }}
    }}
}}
"""


def nginx_missing() -> str | None:
    """Why the HTTPS profiles cannot run here, or None."""
    if shutil.which("nginx") is None:
        return "nginx is not installed: `sudo apt-get install nginx` (HTTPS profiles)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


class NginxProcess:
    """nginx serving ``root`` over HTTPS (see the module doc)."""

    def __init__(self, root: Path, per_conn_rate: str | None, ca: SimulatorCA) -> None:
        self._root = root
        self._limit = f"limit_rate {_nginx_rate(per_conn_rate)};" if per_conn_rate else ""
        self._ca = ca
        self._proc: subprocess.Popen[bytes] | None = None
        self._work = Path(tempfile.mkdtemp(prefix="civitai-tui-nginx-"))
        self.base_url = ""

    @property
    def pid(self) -> int:
        assert self._proc is not None, "nginx not started"
        return self._proc.pid

    def cpu_seconds(self) -> float:
        """CPU of the master and its workers so far."""
        master = psutil.Process(self.pid)
        total = 0.0
        for proc in (master, *master.children(recursive=True)):
            times = proc.cpu_times()
            total += times.user + times.system
        return total

    def url(self, name: str) -> str:
        return f"{self.base_url}/files/{name}"

    def __enter__(self) -> NginxProcess:
        port = _free_port()
        conf = self._work / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                # Run as root, nginx would hand its workers to "nobody", who cannot
                # read a corpus under a private temporary directory.
                user="user root;" if os.geteuid() == 0 else "",
                workers=2,
                work=self._work,
                port=port,
                pem=self._ca.server_pem,
                root=self._root,
                limit=self._limit,
            )
        )
        self._proc = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(self._work)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_port(port, self._proc, "nginx")
        except BaseException:
            self.stop()
            raise
        self.base_url = f"https://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._work, ignore_errors=True)


def _nginx_rate(rate: str) -> str:
    """``20MB`` (10^6 bytes, the harness's unit) as nginx wants it: bytes per second."""
    from bench.pacing import parse_rate

    return str(int(parse_rate(rate)))


class ProxyProcess:
    """``python -m civitai_tui.simulator.proxy`` on loopback (a context manager)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system

    def __enter__(self) -> ProxyProcess:
        port = _free_port()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "civitai_tui.simulator.proxy", "--port", str(port)],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
        )
        _wait_port(port, self._proc, "the bench proxy")
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait()
