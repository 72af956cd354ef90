"""Waiting in tests for a condition nothing signals (another thread's state, captured log
lines). Where there is an event to wait on (bus.idle(), WatchedJobs.until, a Future), wait
on that instead."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


# The one deliberate poller of the tests (ASYNC109/110 say to wait on an event instead: there
# is none here, which is this module's reason to be).
async def until(condition: Callable[[], object], *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Return as soon as `condition()` is true, looking every few milliseconds; TimeoutError
    if it is still false after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
