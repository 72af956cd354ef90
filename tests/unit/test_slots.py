"""FairSlots: at most N holders, waiters served one job at a time in turn."""

from __future__ import annotations

import asyncio

from mailvet.pipeline.slots import FairSlots


async def test_waiters_are_served_round_robin_across_jobs() -> None:
    slots = FairSlots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(job: str, n: int) -> None:
        async with slots.hold(job):
            order.append(f"{job}{n}")
            if not order[1:]:
                await release.wait()  # the first holder keeps the slot while the rest queue

    first = asyncio.create_task(hold("big", 0))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(hold("big", n)) for n in range(1, 4)]
    waiters.append(asyncio.create_task(hold("small", 0)))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *waiters)
    # the small job's chunk comes right after the holder's, not behind the big job's queue
    assert order == ["big0", "big1", "small0", "big2", "big3"]
    assert slots.free == 1


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    slots = FairSlots(1)
    entered: list[str] = []
    gate = asyncio.Event()

    async def hold(job: str) -> None:
        async with slots.hold(job):
            entered.append(job)
            await gate.wait()

    holder = asyncio.create_task(hold("a"))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(hold("b"))
    later = asyncio.create_task(hold("c"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(holder, later, cancelled, return_exceptions=True)
    assert entered == ["a", "c"]
    assert slots.free == 1


async def test_no_more_than_the_slots_hold_at_once() -> None:
    slots = FairSlots(3)
    holding = 0
    peak = 0

    async def hold(job: str) -> None:
        nonlocal holding, peak
        async with slots.hold(job):
            holding += 1
            peak = max(peak, holding)
            await asyncio.sleep(0)
            holding -= 1

    await asyncio.gather(*(hold(f"job{n % 4}") for n in range(20)))
    assert peak == 3
    assert slots.free == 3
