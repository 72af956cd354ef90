"""Remember the results of async lookups, and share the ones still running.

Used for DNS answers per name, verdicts per address and catch-all answers per domain:
concurrent callers asking the same key wait for one computation; a failed computation is
forgotten (the next caller tries again); the oldest finished results are dropped past `size`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, asyncio.Future[V]] = OrderedDict()

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        future = self._entries.get(key)
        if future is not None:
            self._entries.move_to_end(key)
            return await asyncio.shield(future)
        future = asyncio.get_running_loop().create_future()
        self._entries[key] = future
        try:
            value = await compute()
        except BaseException as exc:
            self._entries.pop(key, None)
            future.set_exception(exc)
            future.exception()  # waiters get it; nobody else needs to retrieve it
            raise
        future.set_result(value)
        self._trim()
        return value

    def _trim(self) -> None:
        while len(self._entries) > self._size:
            oldest, first = next(iter(self._entries.items()))
            if not first.done():
                break  # still running: keep it (and everything newer)
            del self._entries[oldest]
