"""Asyncio waits with a time limit that never lose a cancellation.

On Python 3.11, ``asyncio.wait_for`` returns normally when its task is cancelled
just as the awaited thing completes: the cancellation is lost (CPython gh-86296,
fixed in 3.12), and a loop that should stop goes on (``stop()`` of the optimizer
hung that way). ``asyncio.timeout`` keeps it, so every limited wait goes through it.
"""

from __future__ import annotations

import asyncio
import contextlib


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set, at most ``timeout`` seconds; whether it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()
