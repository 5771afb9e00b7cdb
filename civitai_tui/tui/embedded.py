"""``--embedded`` and the demo: an in-process engine with its control API, then the UI.

The engine runs on the UI's event loop and serves its API on the state dir's
socket, so the UI still talks to it only through :class:`EngineClient`. It
stops when the UI exits (unlike the background engine).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from civitai_tui.engine.core import Engine
from civitai_tui.engine.process import EnginePaths
from civitai_tui.engine.server import start_api
from civitai_tui.tui.app import run_tui_async

Setup = Callable[[Engine], Awaitable[None]]


async def run_embedded_async(
    engine_factory: Callable[[], Engine], *, setup: Setup | None = None, title: str = "civitai-tui"
) -> None:
    engine = engine_factory()
    await engine.start()
    socket = EnginePaths(engine.state_dir).socket
    runner = await start_api(engine, socket)
    try:
        if setup is not None:
            await setup(engine)
        await run_tui_async(socket, engine.state_dir, title=title)
    finally:
        await runner.cleanup()
        await engine.stop()
        socket.unlink(missing_ok=True)


def run_tui_embedded(
    engine_factory: Callable[[], Engine], *, setup: Setup | None = None, title: str = "civitai-tui"
) -> None:
    """Start ``engine_factory()``, run ``setup(engine)`` (e.g. queue a sample), open the UI."""
    asyncio.run(run_embedded_async(engine_factory, setup=setup, title=title))
