"""Limited waits keep a cancellation that arrives as the awaited event is set."""

from __future__ import annotations

import asyncio

import pytest

from civitai_tui.aio import wait_event


async def test_wait_event_tells_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5.0) is True


async def test_a_cancellation_as_the_event_is_set_is_not_lost() -> None:
    event = asyncio.Event()
    rounds = 0

    async def loop_until_cancelled() -> None:
        nonlocal rounds
        while True:  # what the optimizer's and the bridge's loops do
            rounds += 1
            event.clear()
            await wait_event(event, 10.0)

    task = asyncio.create_task(loop_until_cancelled())
    await asyncio.sleep(0)  # the task waits on the event now
    event.set()
    task.cancel()  # in the same step: asyncio.wait_for on 3.11 returned, and looped on
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2.0)
    assert task.cancelled() and rounds == 1
