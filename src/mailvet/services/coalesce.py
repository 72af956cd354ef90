"""Concurrent calls coalesced into rounds: one database round trip (or one transaction) for
all the requests of a process that want the same kind of thing at the same moment (group
commit). Used for the API's hot path: the key lookups (services/api_keys.py), the account
reads (services/api_validation.py) and the single checks' charges
(services/single_checks.py).

`Coalescer(run)`: `await coalescer.submit(item)` puts the item in the next round and answers
its result. A round takes every item waiting (at most `limit`), calls `run(items)` once and
hands each caller its own result (`run` answers one per item, in order); when `run` raises,
every caller of that round gets the error and no other caller does: a failure fails exactly
the items of its round. One round runs at a time: the items that come while it runs make up
the next, so under load a round takes what came during the last one, and a lone call runs at
once (no timer: no latency added beyond one turn of the event loop).

A caller cancelled before its round starts is left out of it; once its round has started its
item is done whatever becomes of the caller (as a statement already sent would be).

Nothing is cached: a result is given to the callers of its round only.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from mailvet.logs import logger

T = TypeVar("T")
R = TypeVar("R")

ROUND_LIMIT = 256  # items of one round (a bounded IN list, a bounded multi-row INSERT)


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        limit: int = ROUND_LIMIT,
        idle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`idle()`: awaited when a run of rounds ends (nothing waits any more), e.g. to give
        back a connection kept from one round to the next (services/reads.py Held)."""
        if limit < 1:
            raise ValueError("a round holds at least one item")
        self._run = run
        self._limit = limit
        self._idle = idle
        # one lane per event loop (a test's loop and its app's portal loop may share one
        # database): each with its items and its task, gone when it has nothing to do
        self._lanes: dict[asyncio.AbstractEventLoop, _Lane[T, R]] = {}
        self.rounds = 0  # rounds run so far (what a test counts)

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        lane = self._lanes.get(loop)
        if lane is None:
            lane = self._lanes[loop] = _Lane()
        lane.waiting.append((item, future))
        if lane.task is None or lane.task.done():
            lane.task = loop.create_task(self._run_rounds(loop, lane))
        return await future

    async def _run_rounds(self, loop: asyncio.AbstractEventLoop, lane: _Lane[T, R]) -> None:
        try:
            await self._rounds_while_waiting(lane)
        finally:
            if self._lanes.get(loop) is lane and not lane.waiting:
                del self._lanes[loop]
            await self._go_idle()

    async def _go_idle(self) -> None:
        """`idle()`, whose failure (closing a broken connection) changes no round's answer."""
        if self._idle is None:
            return
        try:
            await self._idle()
        except Exception as exc:
            logger(__name__).warning("coalesce_idle_failed", error=type(exc).__name__)

    async def _rounds_while_waiting(self, lane: _Lane[T, R]) -> None:
        waiting = lane.waiting
        while waiting:
            taken: list[tuple[T, asyncio.Future[R]]] = []
            while waiting and len(taken) < self._limit:
                item, future = waiting.popleft()
                if not future.done():  # a cancelled caller: not in the round
                    taken.append((item, future))
            if not taken:
                continue
            self.rounds += 1
            try:
                results = await self._run([item for item, _ in taken])
                if len(results) != len(taken):
                    raise RuntimeError(f"a round of {len(taken)} answered {len(results)}")
                if not waiting:
                    # the last round of the run: what it keeps goes back before its callers
                    # are answered (one may close the database next)
                    await self._go_idle()
            except Exception as exc:
                await self._go_idle()
                for _, future in taken:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # this task cancelled (the loop ends): so are its callers
                for _, future in [*taken, *waiting]:
                    future.cancel()
                waiting.clear()
                raise
            for (_, future), result in zip(taken, results, strict=True):
                if not future.done():
                    future.set_result(result)


class _Lane(Generic[T, R]):
    """The items of one event loop waiting for a round, and the task running its rounds."""

    def __init__(self) -> None:
        self.waiting: deque[tuple[T, asyncio.Future[R]]] = deque()
        self.task: asyncio.Task[None] | None = None
