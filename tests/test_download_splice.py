"""The zero-copy path (socket → pipe → file): offsets, end of stream, timeouts, refusals."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from civitai_tui.download import splice
from civitai_tui.errors import CivitaiTuiError, FailureKind

pytestmark = pytest.mark.skipif(not splice.available(), reason="splice(2) is Linux-only")

KiB = 1024


@pytest.fixture
def peers() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair; the reading end is non-blocking, as a socket with a timeout is."""
    sender, receiver = socket.socketpair()
    receiver.setblocking(False)
    yield sender, receiver
    sender.close()
    receiver.close()


def send_all(sender: socket.socket, data: bytes, then_close: bool = False) -> None:
    """Send from a thread (more than a socket buffer holds would block the test)."""

    def run() -> None:
        with contextlib.suppress(OSError):  # the test may close the pair before the end
            sender.sendall(data)
            if then_close:
                sender.shutdown(socket.SHUT_WR)

    threading.Thread(target=run, daemon=True).start()


@pytest.fixture
def pipe() -> Iterator[splice.SplicePipe]:
    made = splice.SplicePipe()
    yield made
    made.close()


def test_socket_bytes_land_at_the_offset(
    peers: tuple[socket.socket, socket.socket], pipe: splice.SplicePipe, tmp_path: Path
) -> None:
    sender, receiver = peers
    body = os.urandom(300 * KiB)
    send_all(sender, body, then_close=True)
    path = tmp_path / "file.part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pos = 4 * KiB
        while moved := pipe.move(receiver.fileno(), fd, pos, len(body), 5.0, path):
            pos += moved
        assert pos == 4 * KiB + len(body)  # then 0: the peer closed
    finally:
        os.close(fd)
    assert path.read_bytes() == bytes(4 * KiB) + body


def test_no_bytes_within_the_timeout_is_a_timeout(
    peers: tuple[socket.socket, socket.socket], pipe: splice.SplicePipe, tmp_path: Path
) -> None:
    _, receiver = peers
    with pytest.raises(TimeoutError):
        pipe.move(receiver.fileno(), 1, 0, KiB, 0.05, tmp_path)


def test_a_file_that_refuses_splice_gets_the_bytes_back(
    peers: tuple[socket.socket, socket.socket], pipe: splice.SplicePipe, tmp_path: Path
) -> None:
    sender, receiver = peers
    sender.sendall(b"x" * 1000)
    fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with pytest.raises(splice.Unsupported) as caught:  # O_APPEND: no writes at an offset
            pipe.move(receiver.fileno(), fd, 0, 1000, 5.0, tmp_path)
    finally:
        os.close(fd)
    assert caught.value.data == b"x" * 1000  # nothing is lost: the caller writes them
    sender.sendall(b"y" * 10)  # and the pipe is empty again for the next call
    assert pipe.move(receiver.fileno(), os.open(os.devnull, os.O_WRONLY), 0, 10, 5.0, tmp_path)


def test_a_full_disk_is_disk_full(
    peers: tuple[socket.socket, socket.socket], pipe: splice.SplicePipe, tiny_disk: Path
) -> None:
    sender, receiver = peers
    send_all(sender, os.urandom(2 << 20))  # twice the disk
    path = tiny_disk / "file.part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    pos = 0
    try:
        with pytest.raises(CivitaiTuiError) as caught:
            while True:
                pos += pipe.move(receiver.fileno(), fd, pos, 2 << 20, 5.0, path)
    finally:
        os.close(fd)
    assert caught.value.kind is FailureKind.DISK_FULL and str(path) in caught.value.message
