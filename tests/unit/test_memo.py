"""The shared-lookup memo: sharing, lifetimes, failures, cancellation and trimming."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from mailvet.memo import Memo

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Lookup:
    """A computation the test releases by hand; records how often it was started."""

    def __init__(self, value: str = "v") -> None:
        self.value = value
        self.calls = 0
        self.finished = 0
        self.release = asyncio.Event()

    async def __call__(self) -> str:
        self.calls += 1
        number = self.calls
        await self.release.wait()
        self.finished += 1
        return f"{self.value}{number}"


async def instant(value: str) -> str:
    return value


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_callers_share_one_computation() -> None:
    memo: Memo[str, str] = Memo(10)
    lookup = Lookup()
    waiters = [asyncio.ensure_future(memo.get("k", lookup)) for _ in range(5)]
    await settle()
    assert lookup.calls == 1 and len(memo) == 1
    lookup.release.set()
    assert await asyncio.gather(*waiters) == ["v1"] * 5
    assert await memo.get("k", lookup) == "v1"  # remembered
    assert lookup.calls == 1


async def test_without_ttl_values_are_kept_until_trimmed() -> None:
    clock = FakeClock()
    memo: Memo[str, str] = Memo(10, clock=clock)
    assert await memo.get("k", lambda: instant("first")) == "first"
    clock.advance(10**9)
    assert await memo.get("k", lambda: instant("second")) == "first"


async def test_a_value_expires_after_its_ttl() -> None:
    clock = FakeClock()
    memo: Memo[str, str] = Memo(10, ttl=lambda value: 30.0, clock=clock)
    assert await memo.get("k", lambda: instant("first")) == "first"
    clock.advance(29.9)
    assert await memo.get("k", lambda: instant("second")) == "first"
    clock.advance(0.1)
    assert await memo.get("k", lambda: instant("second")) == "second"
    clock.advance(29.9)
    assert await memo.get("k", lambda: instant("third")) == "second"  # a fresh lifetime


async def test_the_ttl_depends_on_the_value() -> None:
    clock = FakeClock()
    memo: Memo[str, str] = Memo(
        10, ttl=lambda value: 5.0 if value == "unknown" else None, clock=clock
    )
    await memo.get("a", lambda: instant("unknown"))
    await memo.get("b", lambda: instant("valid"))
    clock.advance(6)
    assert await memo.get("a", lambda: instant("valid")) == "valid"
    assert await memo.get("b", lambda: instant("other")) == "valid"


async def test_a_lifetime_starts_when_the_value_arrives() -> None:
    clock = FakeClock()
    memo: Memo[str, str] = Memo(10, ttl=lambda value: 10.0, clock=clock)
    lookup = Lookup()
    first = asyncio.ensure_future(memo.get("k", lookup))
    await settle()
    clock.advance(60)  # a slow lookup
    lookup.release.set()
    assert await first == "v1"
    clock.advance(9)
    assert await memo.get("k", lookup) == "v1"


@pytest.mark.parametrize("seconds", [0.0, -1.0])
async def test_a_zero_ttl_is_shared_in_flight_but_not_kept(seconds: float) -> None:
    memo: Memo[str, str] = Memo(10, ttl=lambda value: seconds)
    lookup = Lookup()
    waiters = [asyncio.ensure_future(memo.get("k", lookup)) for _ in range(3)]
    await settle()
    lookup.release.set()
    assert await asyncio.gather(*waiters) == ["v1"] * 3
    assert lookup.calls == 1 and len(memo) == 0
    assert await memo.get("k", lookup) == "v2"


async def test_a_failure_reaches_every_waiter_and_is_not_kept() -> None:
    memo: Memo[str, str] = Memo(10)
    release = asyncio.Event()
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        raise LookupError("servfail")

    waiters = [asyncio.ensure_future(memo.get("k", failing)) for _ in range(3)]
    await settle()
    release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert [type(r) for r in results] == [LookupError] * 3
    assert calls == 1 and len(memo) == 0
    assert await memo.get("k", lambda: instant("ok")) == "ok"  # the next caller tries again


async def test_cancelling_the_starter_does_not_cancel_the_others() -> None:
    memo: Memo[str, str] = Memo(10)
    lookup = Lookup()
    starter = asyncio.ensure_future(memo.get("k", lookup))
    await settle()
    other = asyncio.ensure_future(memo.get("k", lookup))
    await settle()
    starter.cancel()
    await settle()
    assert starter.cancelled() and not other.done()
    lookup.release.set()
    assert await other == "v1"
    assert lookup.calls == 1 and lookup.finished == 1
    assert await memo.get("k", lookup) == "v1"  # and it is kept


async def test_cancelling_a_waiter_affects_only_that_waiter() -> None:
    memo: Memo[str, str] = Memo(10)
    lookup = Lookup()
    starter = asyncio.ensure_future(memo.get("k", lookup))
    await settle()
    waiters = [asyncio.ensure_future(memo.get("k", lookup)) for _ in range(2)]
    await settle()
    waiters[0].cancel()
    await settle()
    lookup.release.set()
    assert await starter == "v1" and await waiters[1] == "v1"
    assert waiters[0].cancelled() and lookup.calls == 1


async def test_a_computation_nobody_waits_for_finishes_and_is_kept() -> None:
    memo: Memo[str, str] = Memo(10)
    lookup = Lookup()
    only = asyncio.ensure_future(memo.get("k", lookup))
    await settle()
    only.cancel()
    await settle()
    lookup.release.set()
    await settle()
    assert lookup.finished == 1
    assert await memo.get("k", lookup) == "v1"
    assert lookup.calls == 1


async def test_an_abandoned_failure_is_forgotten_quietly() -> None:
    memo: Memo[str, str] = Memo(10)
    release = asyncio.Event()

    async def failing() -> str:
        await release.wait()
        raise LookupError("servfail")

    only = asyncio.ensure_future(memo.get("k", failing))
    await settle()
    only.cancel()
    await settle()
    release.set()
    await settle()
    assert len(memo) == 0
    assert await memo.get("k", lambda: instant("ok")) == "ok"


async def test_size_bound_drops_the_least_recently_asked() -> None:
    memo: Memo[str, str] = Memo(3)
    for key in "abc":
        await memo.get(key, partial(instant, key))
    await memo.get("a", lambda: instant("again"))  # a hit: "a" is now the newest
    await memo.get("d", lambda: instant("d"))
    assert len(memo) == 3
    assert await memo.get("b", lambda: instant("b2")) == "b2"  # "b" was dropped
    assert await memo.get("a", lambda: instant("a2")) == "a"
    for index in range(50):
        await memo.get(f"x{index}", lambda: instant("x"))
        assert len(memo) <= 3


async def test_trimming_skips_a_pending_oldest_entry() -> None:
    memo: Memo[str, str] = Memo(2)
    slow = Lookup("slow")
    pending = asyncio.ensure_future(memo.get("slow", slow))
    await settle()
    for index in range(10):
        await memo.get(f"k{index}", partial(instant, f"v{index}"))
        assert len(memo) <= 2  # the pending entry does not stop trimming
    assert await memo.get("k9", lambda: instant("again")) == "v9"  # newest kept
    assert await memo.get("k0", lambda: instant("again")) == "again"  # oldest dropped
    assert slow.calls == 1 and not pending.done()
    joined = asyncio.ensure_future(memo.get("slow", slow))  # still shared, never trimmed
    await settle()
    slow.release.set()
    assert await pending == "slow1" and await joined == "slow1"
    assert slow.calls == 1


async def test_forget_drops_a_value_and_detaches_a_pending_lookup() -> None:
    memo: Memo[str, str] = Memo(10)
    await memo.get("k", lambda: instant("first"))
    memo.forget("k")
    memo.forget("never-asked")
    assert len(memo) == 0
    assert await memo.get("k", lambda: instant("second")) == "second"

    lookup = Lookup()
    waiter = asyncio.ensure_future(memo.get("p", lookup))
    await settle()
    memo.forget("p")
    fresh = asyncio.ensure_future(memo.get("p", lookup))  # a new lookup, not the old one
    await settle()
    assert lookup.calls == 2
    lookup.release.set()
    assert (await waiter, await fresh) == ("v1", "v2")
    assert await memo.get("p", lambda: instant("third")) == "v2"  # the forgotten one is not filed
    assert len(memo) == 2  # "k" and "p"


async def test_peek_gives_only_known_fresh_values() -> None:
    clock = FakeClock()
    memo: Memo[str, str] = Memo(10, ttl=lambda value: 30.0, clock=clock)
    assert memo.peek("k", "none") == "none"
    lookup = Lookup()
    waiter = asyncio.ensure_future(memo.get("k", lookup))
    await settle()
    assert memo.peek("k", "none") == "none"  # still being computed
    lookup.release.set()
    assert await waiter == "v1"
    assert memo.peek("k", "none") == "v1"
    clock.advance(30.0)
    assert memo.peek("k", "none") == "none"  # expired
    assert lookup.calls == 1  # peeking never computes


async def test_put_files_a_value_computed_elsewhere_for_its_ttl() -> None:
    clock = FakeClock()
    memo: Memo[str, str] = Memo(10, ttl=lambda value: 0.0 if value == "skip" else 30.0, clock=clock)
    memo.put("k", "given")
    assert await memo.get("k", lambda: instant("computed")) == "given"
    memo.put("z", "skip")  # a lifetime of 0: not kept
    assert memo.peek("z", "none") == "none"
    clock.advance(30.0)
    assert await memo.get("k", lambda: instant("computed")) == "computed"
