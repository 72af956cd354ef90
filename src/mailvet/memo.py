"""Remember the results of async lookups for a while, and share the ones still running.

Used for DNS answers (mail routes per domain, addresses per MX host) and catch-all answers
per domain through `get`, and for verdicts per (address, checks) through `peek` and `put`
(the engine shares verdicts still being computed with futures of its own).

* Concurrent callers of `get` with the same key wait for one computation.  The computation
  runs as its own task: cancelling a caller (even the one whose call started it) cancels only
  that caller's wait; the others still get the value, and a computation nobody waits for any
  more finishes and is kept.
* A failed (or cancelled) computation is forgotten: its waiters get the exception, the next
  caller tries again.
* `ttl(value)` is how many seconds a finished value is kept: None forever (until trimmed),
  `<= 0` not at all (shared only while in flight).  An expired value is computed afresh by
  the next caller.  Without `ttl` every value is kept until trimmed.
* Past `size` entries the least recently used finished ones are dropped (`get` and `put`
  count as a use, `peek` does not); pending ones are skipped (never dropped, never in the
  way), so a slow lookup cannot stop the trimming, though pending entries count toward
  `size` and the memo may hold more than `size` while that many are in flight.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Entry(Generic[V]):
    __slots__ = ("task", "ready", "expires")

    def __init__(self) -> None:
        self.task: asyncio.Future[V] | None = None  # the computation (a Task), or a put value
        self.ready = False  # the value is in and the entry may be trimmed
        self.expires = math.inf  # clock reading after which the value is stale (once ready)


def _retrieve(task: asyncio.Task[object]) -> None:
    """Mark a failure as seen: every waiter may be gone, nobody else needs it."""
    if not task.cancelled():
        task.exception()


class Memo(Generic[K, V]):
    def __init__(
        self,
        size: int,
        *,
        ttl: Callable[[V], float | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._running: set[asyncio.Task[V]] = set()  # strong references while in flight

    def __len__(self) -> int:
        """Entries held: pending ones, and finished ones not yet found stale or trimmed."""
        return len(self._entries)

    def forget(self, key: K) -> None:
        """Drop what is known about `key`; a pending computation still answers its waiters."""
        self._entries.pop(key, None)

    def peek(self, key: K, default: V) -> V:
        """The value of `key` if it is known and fresh (no computation, no await), else
        `default`."""
        entry = self._entries.get(key)
        if entry is None or not entry.ready or entry.expires <= self._clock():
            return default
        if entry.task is None:  # never: the task is set as its entry is filed
            raise RuntimeError("a memo entry without its computation")
        return entry.task.result()

    def put(self, key: K, value: V) -> None:
        """Remember a value computed elsewhere (for its `ttl`), as `get` would have."""
        seconds = self._ttl(value) if self._ttl is not None else None
        if seconds is not None and seconds <= 0:
            self._entries.pop(key, None)
            return
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        future.set_result(value)
        entry: _Entry[V] = _Entry()
        entry.task = future
        entry.expires = math.inf if seconds is None else self._clock() + seconds
        entry.ready = True
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._trim()

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None:
            if not entry.ready:
                self._entries.move_to_end(key)
                if entry.task is None:  # never: the task is set as its entry is filed
                    raise RuntimeError("a memo entry without its computation")
                return await asyncio.shield(entry.task)
            if entry.expires > self._clock():
                self._entries.move_to_end(key)
                if entry.task is None:  # never: the task is set as its entry is filed
                    raise RuntimeError("a memo entry without its computation")
                return entry.task.result()  # no await: ready values need no event loop turn
            del self._entries[key]
        entry = _Entry()
        self._entries[key] = entry
        task = asyncio.get_running_loop().create_task(self._run(key, entry, compute))
        entry.task = task
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(_retrieve)
        self._trim()
        return await asyncio.shield(task)

    async def _run(self, key: K, entry: _Entry[V], compute: Callable[[], Awaitable[V]]) -> V:
        """The computation as its own task; files the outcome before the task completes."""
        try:
            value = await compute()
        except BaseException:
            self._drop(key, entry)
            raise
        seconds = self._ttl(value) if self._ttl is not None else None
        if seconds is not None and seconds <= 0:
            self._drop(key, entry)
        else:
            entry.expires = math.inf if seconds is None else self._clock() + seconds
            entry.ready = True
            self._trim()
        return value

    def _drop(self, key: K, entry: _Entry[V]) -> None:
        if self._entries.get(key) is entry:  # not forgotten and replaced meanwhile
            del self._entries[key]

    def _trim(self) -> None:
        excess = len(self._entries) - self._size
        if excess <= 0:
            return
        doomed: list[K] = []
        for key, entry in self._entries.items():  # oldest first
            if entry.ready:
                doomed.append(key)
                if len(doomed) == excess:
                    break
        for key in doomed:
            del self._entries[key]
