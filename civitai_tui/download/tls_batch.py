"""Reading a TLS body a batch of records at a time (the range threads' copy path).

``SSL_read`` gives at most one TLS record (16 KiB) per call. Landing each record
with its own ``pwrite`` and loop turn cost more CPU than the decryption, so a read
takes every record the connection already holds, up to the buffer. Only the
first record of a batch is waited for: a stalling server still shows as a stall.
Kept apart (standard library only) so the bench's floor client reads the same way.
"""

from __future__ import annotations

import select
import ssl


class TlsBatch:
    """Reads as many TLS records as the connection has ready into one buffer."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)

    def read(self, view: memoryview) -> int:
        sock, limit = self.sock, len(view)
        n = sock.recv_into(view)
        while n and n < limit and (sock.pending() or self._poll.poll(0)):
            got = sock.recv_into(view[n:])
            if not got:
                break
            n += got
        return n
