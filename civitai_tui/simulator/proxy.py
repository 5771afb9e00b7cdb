"""A small forward proxy on loopback, as users have: HTTP (CONNECT and absolute-form) and SOCKS5.

Tests and the bench run it as its own process
(``python -m civitai_tui.simulator.proxy``; it prints ``listening on HOST:PORT``)
and ask it what it carried: an origin-form ``GET /stats`` answers
``{"requests": {"connect 127.0.0.1:8443": 3, "forward 127.0.0.1:8080": 1, ...}}``
(one count per tunnel or forwarded request, by kind and target) and
``{"refused": n}``. Knobs: ``--auth user:password`` (HTTP proxies answer 407
without it; SOCKS5 asks for username/password), ``--mode refuse`` (403 to every
proxy request, SOCKS5 "connection not allowed") and ``--mode drop`` (the
connection is closed unanswered). Forwarded (absolute-form) requests are one per
connection: the proxy answers with ``Connection: close``. Tunnels (CONNECT, SOCKS)
are relayed with ``splice`` in threads (a C proxy's cost, not Python's per chunk).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import ipaddress
import json
import os
import socket
import struct
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
CHUNK = 256 * 1024


@dataclass
class ForwardProxy:
    """The proxy's settings and what it has carried."""

    auth: str | None = None  # "user:password" required from clients
    mode: str = "ok"  # ok | refuse | drop
    requests: Counter[str] = field(default_factory=Counter)
    refused: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readexactly(1)
            if first == b"\x05":
                await self._socks5(reader, writer)
            else:
                head = first + await reader.readuntil(b"\r\n\r\n")
                await self._http(head, reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # ---------------------------------------------------------------- HTTP
    async def _http(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [line for line in lines[1:] if line]
        if method == "GET" and target == "/stats":
            body = json.dumps({"requests": dict(self.requests), "refused": self.refused}).encode()
            writer.write(_answer(200, "OK", body, "application/json"))
            return
        if method == "CONNECT":
            kind, (host, port) = "connect", _host_port(target, 443)
        else:
            parts = urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                writer.write(_answer(400, "Bad Request", b"absolute http:// URL expected"))
                return
            kind, (host, port) = "forward", (parts.hostname, parts.port or 80)
        if self.mode == "drop":
            return
        if self.mode == "refuse":
            self.refused += 1
            writer.write(_answer(403, "Forbidden", b"refused by policy"))
            return
        if self.auth is not None and _basic(headers) != self.auth:
            self.refused += 1
            writer.write(
                _answer(
                    407, "Proxy Authentication Required", b"", extra="Proxy-Authenticate: Basic"
                )
            )
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(_answer(502, "Bad Gateway", b"cannot reach the target"))
            return
        self.requests[f"{kind} {host}:{port}"] += 1
        if kind == "connect":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await _tunnel(reader, writer, up_reader, up_writer)
            return
        path = urlsplit(target)._replace(scheme="", netloc="").geturl() or "/"
        kept = [
            h
            for h in headers
            if h.split(":", 1)[0].strip().lower()
            not in ("proxy-authorization", "proxy-connection", "connection")
        ]
        request = [f"{method} {path} HTTP/1.1", *kept, "Connection: close", "", ""]
        up_writer.write("\r\n".join(request).encode("latin-1"))
        response = await up_reader.readuntil(b"\r\n\r\n")
        writer.write(_closing(response))
        await _pipe_both(reader, writer, up_reader, up_writer)

    # -------------------------------------------------------------- SOCKS5
    async def _socks5(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count = (await reader.readexactly(1))[0]
        methods = await reader.readexactly(count)
        wanted = 0x02 if self.auth is not None else 0x00
        if wanted not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(bytes([5, wanted]))
        if wanted == 0x02:
            await reader.readexactly(1)  # sub-negotiation version
            user = await reader.readexactly((await reader.readexactly(1))[0])
            password = await reader.readexactly((await reader.readexactly(1))[0])
            good = f"{user.decode()}:{password.decode()}" == self.auth
            writer.write(b"\x01\x00" if good else b"\x01\x01")
            if not good:
                self.refused += 1
                return
        _, command, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = socket.inet_ntoa(await reader.readexactly(4))
        elif kind == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        else:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        if self.mode == "drop":
            return
        if command != 1 or self.mode == "refuse":
            self.refused += 1
            writer.write(b"\x05\x02\x00\x01" + bytes(6))  # connection not allowed by ruleset
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
            return
        self.requests[f"socks {host}:{port}"] += 1
        writer.write(b"\x05\x00\x00\x01" + bytes(6))
        await _tunnel(reader, writer, up_reader, up_writer)


def _host_port(text: str, default: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        return text.strip("[]"), default
    return host.strip("[]"), int(port)


def _basic(headers: list[str]) -> str | None:
    for line in headers:
        name, _, value = line.partition(":")
        if name.strip().lower() == "proxy-authorization":
            scheme, _, encoded = value.strip().partition(" ")
            if scheme.lower() == "basic":
                with contextlib.suppress(ValueError):
                    return base64.b64decode(encoded).decode()
    return None


def _answer(
    status: int, reason: str, body: bytes, kind: str = "text/plain", extra: str = ""
) -> bytes:
    head = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {kind}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if extra:
        head.append(extra)
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _closing(response_head: bytes) -> bytes:
    """The response head with ``Connection: close`` (the proxy ends the connection after it)."""
    lines = response_head.decode("latin-1").split("\r\n")
    kept = [line for line in lines[:-2] if not line.lower().startswith("connection:")]
    return "\r\n".join([*kept, "Connection: close", "", ""]).encode("latin-1")


#: Threads relaying tunnels: two per tunnel (one per direction).
_RELAYS = ThreadPoolExecutor(max_workers=1024, thread_name_prefix="relay")


async def _tunnel(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Relay an open tunnel with ``splice`` in two threads (socket → pipe → socket), so a
    bench run through the proxy measures the clients more than the proxy's Python."""
    if not hasattr(os, "splice"):
        await _pipe_both(reader, writer, up_reader, up_writer)
        return
    await writer.drain()
    leftover = bytes(reader._buffer)  # sent by the client before the reply: none in practice
    client, upstream = _detach(writer), _detach(up_writer)
    try:
        if leftover:
            upstream.sendall(leftover)
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            loop.run_in_executor(_RELAYS, _relay, client, upstream),
            loop.run_in_executor(_RELAYS, _relay, upstream, client),
        )
    finally:
        client.close()
        upstream.close()


def _detach(writer: asyncio.StreamWriter) -> socket.socket:
    """A blocking duplicate of the transport's socket; the transport lets go of its own."""
    transport = writer.transport
    transport.pause_reading()  # type: ignore[attr-defined]
    sock = socket.socket(fileno=os.dup(writer.get_extra_info("socket").fileno()))
    sock.setblocking(True)
    transport.abort()  # closes the transport's descriptor; the duplicate keeps the connection
    return sock


def _relay(source: socket.socket, target: socket.socket) -> None:
    """Move bytes from ``source`` to ``target`` until ``source`` ends, then end ``target``."""
    pipe_read, pipe_write = os.pipe()
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe_write, fcntl.F_SETPIPE_SZ, 1 << 20)
        with contextlib.suppress(OSError):
            while moved := os.splice(source.fileno(), pipe_write, 1 << 20):
                while moved:
                    moved -= os.splice(pipe_read, target.fileno(), moved)
    finally:
        os.close(pipe_read)
        os.close(pipe_write)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        up_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


async def serve(host: str, port: int, proxy: ForwardProxy) -> None:
    server = await asyncio.start_server(proxy.handle, host, port, limit=MAX_HEAD)
    bound = server.sockets[0].getsockname()
    print(f"listening on {bound[0]}:{bound[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--auth", help="user:password required from clients")
    parser.add_argument("--mode", choices=("ok", "refuse", "drop"), default="ok")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, ForwardProxy(args.auth, args.mode)))


if __name__ == "__main__":
    main()
