"""Slots handed out round-robin across jobs: a small job behind a big one gets the next free
slot, not a place at the end of the big job's queue."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairSlots:
    """At most `slots` holders at once; waiters are served one job (key) at a time in turn."""

    def __init__(self, slots: int) -> None:
        self._free = max(1, slots)
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    @property
    def free(self) -> int:
        return self._free

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        if self._free > 0 and not self._waiting:
            self._free -= 1
        else:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(key, deque()).append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release()  # the slot was handed over as we were cancelled
                else:
                    self._forget(key, turn)
                raise
        try:
            yield
        finally:
            self._release()

    def _forget(self, key: str, turn: asyncio.Future[None]) -> None:
        queue = self._waiting.get(key)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._waiting[key]

    def _release(self) -> None:
        while self._waiting:
            key = next(iter(self._waiting))
            queue = self._waiting.pop(key)
            turn = queue.popleft()
            if queue:
                self._waiting[key] = queue  # this job goes to the back of the round
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1
