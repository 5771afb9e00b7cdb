"""Reference HTTPS clients: what a TLS body costs at the floor, without our orchestration.

Used to choose the TLS data path by measurement (``bench/README.md``, "Where the CPU
goes over HTTPS"). One connection and one thread per file, every file at once, the
whole file in one GET (no ranges, retries, checks or progress), the body written
with ``os.pwrite`` at its offset:

* ``--engine ssl``: an ``SSLSocket`` read exactly as our range threads read it
  (:class:`civitai_tui.download.tls_batch.TlsBatch`: the records the socket
  already holds, up to 256 KiB, per ``pwrite``; two reads, record header and
  record, and a ``poll`` per 16 KiB record);
* ``--engine bio``: the same OpenSSL over ``ssl.MemoryBIO``: one ``recv`` of up
  to 256 KiB feeds every record in it (a candidate, not what we use: see
  ``bench/README.md``);
* ``--engine pycurl``: libcurl through pycurl (the PyPI wheel bundles libcurl and
  its own OpenSSL), the body handed to a Python write callback.

Usage: ``python -m bench.floor --engine ssl|bio|pycurl --dest DIR URL...``; the CA
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
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from civitai_tui.download.tls_batch import TlsBatch

BUFFER = 256 * 1024


def _target(dest: Path, url: str) -> int:
    name = unquote(Path(urlsplit(url).path).name)
    return os.open(dest / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def _request(url: str) -> tuple[str, int, bytes]:
    """Host, port and the GET for ``url`` (HTTPS only: the floor measures TLS)."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ValueError("the floor clients speak HTTPS only (bench profiles c and d)")
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    get = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
    return parts.hostname or "", parts.port or 443, get.encode()


def _save(url: str, dest: Path, read: Callable[[memoryview], int]) -> int:
    """Read a 200 answer through ``read`` (bytes put in the view; 0 at the end) and write
    its body (``Content-Length`` bytes) to the file; the bytes written."""
    view = memoryview(bytearray(BUFFER))
    head = b""
    while b"\r\n\r\n" not in head:
        n = read(view)
        if not n:
            raise OSError("the connection closed before the headers ended")
        head += view[:n]
    head, _, body = head.partition(b"\r\n\r\n")
    status, *fields = head.decode("latin-1").split("\r\n")
    if not status.startswith("HTTP/1.1 200"):
        raise OSError(status)
    length = next(
        int(f.split(":", 1)[1]) for f in fields if f.lower().startswith("content-length:")
    )
    fd = _target(dest, url)
    try:
        pos = os.pwrite(fd, body, 0)
        while pos < length:
            n = read(view[: min(len(view), length - pos)])
            if not n:
                raise OSError(f"the body ended after {pos} of {length} bytes")
            pos += os.pwrite(fd, view[:n], pos)
    finally:
        os.close(fd)
    return pos


def fetch_ssl(url: str, dest: Path) -> int:
    """GET ``url`` over an ``SSLSocket``, a batch of records per ``pwrite``."""
    host, port, request = _request(url)
    context = ssl.create_default_context()
    with (
        socket.create_connection((host, port)) as raw,
        context.wrap_socket(raw, server_hostname=host) as sock,
    ):
        sock.sendall(request)
        return _save(url, dest, TlsBatch(sock).read)


class _BioTls:
    """TLS over memory BIOs: the socket is read a buffer at a time (one ``recv``
    carries many records) and OpenSSL decrypts from memory."""

    def __init__(self, sock: socket.socket, host: str) -> None:
        self._sock = sock
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        context = ssl.create_default_context()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=host)
        self._raw = memoryview(bytearray(BUFFER))
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()

    def send(self, data: bytes) -> None:
        self._tls.write(data)
        self._flush()

    def read(self, view: memoryview) -> int:
        """Decrypt what the BIO holds into ``view``; one ``recv`` only when it is empty."""
        n = 0
        while n < len(view):
            try:
                got = self._tls.read(len(view) - n, view[n:])
            except ssl.SSLWantReadError:
                if n:
                    return n
                self._fill()
                continue
            except ssl.SSLZeroReturnError:  # close_notify
                return n
            if not got:
                return n
            n += got
        return n

    def _flush(self) -> None:
        if self._outgoing.pending:
            self._sock.sendall(self._outgoing.read())

    def _fill(self) -> None:
        n = self._sock.recv_into(self._raw)
        if n:
            self._incoming.write(self._raw[:n])
        else:
            self._incoming.write_eof()


def fetch_bio(url: str, dest: Path) -> int:
    """GET ``url`` with TLS in memory BIOs (:class:`_BioTls`)."""
    host, port, request = _request(url)
    with socket.create_connection((host, port)) as sock:
        tls = _BioTls(sock, host)
        tls.send(request)
        return _save(url, dest, tls.read)


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


ENGINES = {"ssl": fetch_ssl, "bio": fetch_bio, "pycurl": fetch_pycurl}


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
