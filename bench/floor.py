"""Reference HTTPS clients: what a TLS body costs at the floor, without our orchestration.

Used to choose the TLS data path by measurement (``bench/README.md``, "Where the CPU
goes over HTTPS"). One connection and one thread per file, every file at once, the
whole file in one GET (no ranges, retries, checks or progress), the body written
with ``os.pwrite`` at its offset:

* ``--engine ssl``: the standard library's ``ssl``, read the way our range threads
  read it (:class:`civitai_tui.download.stream.TlsBatch`: the records the socket
  already holds, up to 256 KiB, per ``pwrite``);
* ``--engine pycurl``: libcurl through pycurl (the PyPI wheel bundles libcurl and
  its own OpenSSL), the body handed to a Python write callback.

Usage: ``python -m bench.floor --engine ssl|pycurl --dest DIR URL...``; the CA
comes from ``SSL_CERT_FILE`` as for the other clients. Exit status 1 if a download
failed (the harness checks every file's size and one SHA256).
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from civitai_tui.download.tls_batch import TlsBatch

BUFFER = 256 * 1024


def _target(dest: Path, url: str) -> int:
    name = unquote(Path(urlsplit(url).path).name)
    return os.open(dest / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def fetch_ssl(url: str, dest: Path) -> int:
    """GET ``url`` over the stdlib's TLS; the bytes of the body written."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ValueError("the floor clients speak HTTPS only (bench profiles c and d)")
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context()
    with (
        socket.create_connection((host, port)) as raw,
        context.wrap_socket(raw, server_hostname=host) as sock,
    ):
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("the connection closed before the headers ended")
            head += chunk
        head, _, body = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise OSError(head.splitlines()[0].decode(errors="replace"))
        fd = _target(dest, url)
        try:
            pos = os.pwrite(fd, body, 0)
            view, batch = memoryview(bytearray(BUFFER)), TlsBatch(sock)
            while n := batch.read(view):
                pos += os.pwrite(fd, view[:n], pos)
        finally:
            os.close(fd)
    return pos


def fetch_pycurl(url: str, dest: Path) -> int:
    """GET ``url`` with libcurl (pycurl); the bytes of the body written."""
    import pycurl

    fd, pos = _target(dest, url), 0

    def write(data: bytes) -> None:
        nonlocal pos
        pos += os.pwrite(fd, data, pos)

    curl = pycurl.Curl()
    try:
        curl.setopt(pycurl.URL, url)
        # The wheel's OpenSSL has its own default paths: give it the CA the others read.
        cafile = os.environ.get("SSL_CERT_FILE") or ssl.get_default_verify_paths().cafile
        curl.setopt(pycurl.CAINFO, cafile)
        curl.setopt(pycurl.BUFFERSIZE, BUFFER)
        curl.setopt(pycurl.FAILONERROR, True)
        curl.setopt(pycurl.WRITEFUNCTION, write)
        curl.perform()
    finally:
        curl.close()
        os.close(fd)
    return pos


ENGINES = {"ssl": fetch_ssl, "pycurl": fetch_pycurl}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--engine", choices=sorted(ENGINES), required=True)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args(argv)
    if proxies := [name for name in os.environ if name.lower().endswith("_proxy")]:
        parser.error(f"the floor clients go direct, never through a proxy (set: {proxies})")
    fetch, failures = ENGINES[args.engine], []

    def one(url: str) -> None:
        try:
            fetch(url, args.dest)
        except Exception as exc:  # reported; exit status 1
            failures.append(f"{url}: {exc}")

    threads = [threading.Thread(target=one, args=(url,)) for url in args.urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
