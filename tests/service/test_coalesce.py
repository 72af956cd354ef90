"""services/coalesce.py: concurrent calls in rounds, one `run` each; results to their own
callers only, a failure to exactly its round, a caller cancelled before its round left out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailvet.services.coalesce import Coalescer

pytestmark = pytest.mark.unit


class Doubler:
    """A round function that records its rounds, waits for `gate` and raises on a negative
    item (for the whole round, as a failed transaction would)."""

    def __init__(self) -> None:
        self.rounds: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()  # a round has started

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.rounds.append(list(items))
        self.started.set()
        await self.gate.wait()
        if any(item < 0 for item in items):
            raise ValueError("a negative item")
        return [item * 2 for item in items]


async def test_a_lone_call_is_a_round_of_its_own() -> None:
    run = Doubler()
    coalescer = Coalescer(run)
    assert await coalescer.submit(21) == 42
    assert await coalescer.submit(5) == 10
    assert run.rounds == [[21], [5]]


async def test_calls_made_together_share_a_round_and_get_their_own_results() -> None:
    run = Doubler()
    coalescer = Coalescer(run)
    got = await asyncio.gather(*(coalescer.submit(n) for n in range(100)))
    assert got == [n * 2 for n in range(100)]
    assert run.rounds == [list(range(100))]


async def test_calls_that_come_during_a_round_make_the_next_bounded_by_the_limit() -> None:
    run = Doubler()
    run.gate.clear()
    coalescer = Coalescer(run, limit=3)
    first = asyncio.ensure_future(coalescer.submit(1))
    await asyncio.wait_for(run.started.wait(), 5)  # the first round has started
    later = [asyncio.ensure_future(coalescer.submit(n)) for n in range(10, 17)]
    await asyncio.sleep(0)
    run.gate.set()
    assert await first == 2
    assert [await call for call in later] == [n * 2 for n in range(10, 17)]
    assert run.rounds == [[1], [10, 11, 12], [13, 14, 15], [16]]


async def test_a_failure_fails_exactly_its_round() -> None:
    run = Doubler()
    run.gate.clear()
    coalescer = Coalescer(run)
    failing = [asyncio.ensure_future(coalescer.submit(n)) for n in (1, -1, 2)]
    await asyncio.wait_for(run.started.wait(), 5)
    after = [asyncio.ensure_future(coalescer.submit(n)) for n in (3, 4)]
    await asyncio.sleep(0)
    run.gate.set()
    for call in failing:
        with pytest.raises(ValueError, match="negative"):
            await call
    assert [await call for call in after] == [6, 8]
    assert run.rounds == [[1, -1, 2], [3, 4]]


async def test_a_caller_cancelled_before_its_round_is_left_out() -> None:
    run = Doubler()
    run.gate.clear()
    coalescer = Coalescer(run)
    first = asyncio.ensure_future(coalescer.submit(1))
    await asyncio.wait_for(run.started.wait(), 5)
    gone, kept = (
        asyncio.ensure_future(coalescer.submit(2)),
        asyncio.ensure_future(coalescer.submit(3)),
    )
    await asyncio.sleep(0)
    gone.cancel()
    run.gate.set()
    assert (await first, await kept) == (2, 6)
    assert gone.cancelled()
    assert run.rounds == [[1], [3]]


async def test_two_event_loops_using_one_coalescer_are_each_answered() -> None:
    """A test's loop and its app's portal loop may share a database's coalescer: each loop
    has its rounds of its own."""

    async def double(items: Sequence[int]) -> list[int]:
        await asyncio.sleep(0)
        return [item * 2 for item in items]

    coalescer = Coalescer(double)

    async def many(numbers: range) -> list[int]:
        return await asyncio.gather(*(coalescer.submit(n) for n in numbers))

    with ThreadPoolExecutor(1) as pool:
        theirs = asyncio.get_running_loop().run_in_executor(
            pool, lambda: asyncio.run(many(range(100, 400)))
        )
        mine = await many(range(300))
        assert mine == [n * 2 for n in range(300)]
        assert await asyncio.wait_for(theirs, 10) == [n * 2 for n in range(100, 400)]
