"""Serving the control API: a Unix socket (mode 0600) and an optional TCP listener.

The Unix socket is created under a restrictive umask and chmod-ed to 0600, so
only the owner can talk to the engine. TCP is refused without a strong token;
what a TCP client may do is checked by :mod:`civitai_tui.engine.remote`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from aiohttp import web

from civitai_tui.engine.api import make_app
from civitai_tui.engine.core import Engine
from civitai_tui.engine.remote import TOKEN_HOWTO, Listen, check_token
from civitai_tui.errors import CivitaiTuiError, FailureKind


async def start_api(
    engine: Engine,
    socket_path: Path,
    *,
    tcp: tuple[str, int] | None = None,
    token: str | None = None,
    shutdown_timeout: float = 60.0,
) -> web.AppRunner:
    """Start serving ``engine``'s control API; clean up with ``await runner.cleanup()``."""
    listen = None
    if tcp is not None:
        if not token:
            raise CivitaiTuiError(
                FailureKind.BAD_CONFIG, f"a TCP control listener needs a token: {TOKEN_HOWTO}"
            )
        check_token(token, "the engine's settings")
        listen = Listen(*tcp)
    app = make_app(engine, token=token, listen=listen)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    old_umask = os.umask(0o177)
    try:
        await web.UnixSite(runner, str(socket_path)).start()
    finally:
        os.umask(old_umask)
    os.chmod(socket_path, 0o600)
    if tcp is not None:
        await web.TCPSite(runner, tcp[0], tcp[1]).start()
    return runner
