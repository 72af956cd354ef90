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

T = TypeVar("T")
R = TypeVar("R")

ROUND_LIMIT = 256  # items of one round (a bounded IN list, a bounded multi-row INSERT)


class Coalescer(Generic[T, R]):
    def __init__(
        self, run: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, limit: int = ROUND_LIMIT
    ) -> None:
        if limit < 1:
            raise ValueError("a round holds at least one item")
        self._run = run
        self._limit = limit
        self._waiting: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._rounds: asyncio.Task[None] | None = None
        self.rounds = 0  # rounds run so far (what a test counts)

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        rounds = self._rounds
        if rounds is None or rounds.done() or rounds.get_loop() is not loop:
            self._rounds = loop.create_task(self._run_rounds(loop))
        return await future

    async def _run_rounds(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._waiting:
            taken: list[tuple[T, asyncio.Future[R]]] = []
            while self._waiting and len(taken) < self._limit:
                item, future = self._waiting.popleft()
                # a cancelled caller, or one of an event loop that is gone: not in the round
                if not future.done() and future.get_loop() is loop:
                    taken.append((item, future))
            if not taken:
                continue
            self.rounds += 1
            try:
                results = await self._run([item for item, _ in taken])
                if len(results) != len(taken):
                    raise RuntimeError(f"a round of {len(taken)} answered {len(results)}")
            except Exception as exc:
                for _, future in taken:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # this task cancelled (the loop ends): so are its callers
                for _, future in [*taken, *self._waiting]:
                    future.cancel()
                self._waiting.clear()
                raise
            for (_, future), result in zip(taken, results, strict=True):
                if not future.done():
                    future.set_result(result)
