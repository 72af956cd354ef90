"""Waiting in tests for a condition nothing signals (another thread's state, captured log
lines). Where there is an event to wait on (bus.idle(), WatchedJobs.until, a Future), wait
on that instead."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], object], *, timeout: float = 10.0) -> None:
    """Return as soon as `condition()` is true, looking every few milliseconds; TimeoutError
    if it is still false after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)
