"""The syntax pool starts its processes beside the caller, never in its way."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from mailvet.bootstrap import LazyProcessPool
from mailvet.pipeline.chunk_output import warm_up


class RecordingPool(ThreadPoolExecutor):
    """A thread pool that records what it was given to run."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.ran: list[Callable[..., Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.ran.append(fn)
        return super().submit(fn, *args, **kwargs)


def test_warm_returns_while_the_pool_is_still_being_made() -> None:
    release = threading.Event()
    made: list[RecordingPool] = []

    def make(workers: int) -> Executor:
        release.wait(timeout=30)  # a fork server starting on a busy machine
        made.append(RecordingPool(workers))
        return made[-1]

    pool = LazyProcessPool(2, make=make)
    pool.warm()
    assert not pool.started and made == []  # warm() did not wait for make()
    release.set()
    assert pool.submit(len, "abc").result(timeout=30) == 3
    pool.warm()  # once only
    pool.shutdown()
    assert len(made) == 1
    assert made[0].ran.count(warm_up) == 2  # each worker loads the lists before its first chunk
    assert len in made[0].ran


def test_shutdown_during_the_start_waits_for_it() -> None:
    made: list[RecordingPool] = []

    def make(workers: int) -> Executor:
        made.append(RecordingPool(workers))
        return made[-1]

    pool = LazyProcessPool(1, make=make)
    pool.warm()
    pool.shutdown()  # joins the start, then shuts the pool down: nothing left running
    assert pool.started and made[0].ran == [warm_up]
    assert made[0]._shutdown


def test_warm_up_loads_what_a_first_chunk_needs() -> None:
    import os

    assert warm_up() == os.getpid()
