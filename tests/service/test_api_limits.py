"""The API's limit per key as quota leases (services/api_limits.py) on a migrated SQLite
file: the slice arithmetic, exactly the limit per window whatever the concurrency, one
upsert per slice and not per request, a fresh window, several rates, and two limiters (two
processes) on one database that together never let more through."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.session_models import RateCounterRow
from mailvet.domain.throttle import Rate
from mailvet.services.api_limits import (
    MAX_SLICE,
    KeyLimiter,
    counter_key,
    granted,
    slice_of,
    take,
)

pytestmark = pytest.mark.pipeline

T0 = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)  # 30 s into a minute


def test_a_slice_is_a_twentieth_of_the_limit_within_bounds() -> None:
    assert [slice_of(n) for n in (1, 19, 20, 100, 1000, 10**9)] == [1, 1, 1, 5, 50, MAX_SLICE]


def test_a_lease_is_granted_what_was_left_of_the_limit() -> None:
    assert granted(limit=10, count_after=5, taken=5) == 5  # 0 before: all of it
    assert granted(limit=10, count_after=12, taken=5) == 3  # 7 before: 3 left
    assert granted(limit=10, count_after=15, taken=5) == 0  # 10 before: nothing
    assert granted(limit=10, count_after=40, taken=5) == 0


async def stored(db: Database, key: str) -> tuple[int, int] | None:
    async with db.session_maker() as session:
        row = (
            await session.execute(
                select(RateCounterRow.count, RateCounterRow.window_start).where(
                    RateCounterRow.key == key
                )
            )
        ).one_or_none()
    return None if row is None else (row[0], row[1])


async def test_take_adds_the_slice_and_a_new_window_starts_afresh(db: Database) -> None:
    minute = int(T0.timestamp()) // 60 * 60
    async with db.unit_of_work(write=True) as session:
        assert await take(session, "k", amount=5, start=minute) == 5
        assert await take(session, "k", amount=5, start=minute) == 10
        assert await take(session, "k", amount=5, start=minute + 60) == 5
        # a replica a little behind is counted in the counter's newer window
        assert await take(session, "k", amount=5, start=minute) == 10
    assert await stored(db, "k") == (10, minute + 60)


async def test_exactly_the_limit_passes_under_concurrency_with_one_upsert_a_slice(
    db: Database,
) -> None:
    limiter = KeyLimiter(db, (Rate(100, 60),))

    async def one() -> bool:
        return await limiter.admit("key1", T0) is None

    admitted = await asyncio.gather(*(one() for _ in range(250)))
    assert sum(admitted) == 100
    assert limiter.leases == 100 // slice_of(100)  # 20 upserts for 100 requests
    minute = int(T0.timestamp()) // 60 * 60
    assert await stored(db, counter_key("key1", Rate(100, 60))) == (100, minute)
    refused = await limiter.admit("key1", T0 + timedelta(seconds=10))
    assert refused is not None and not refused.allowed
    assert refused.retry_after == 20  # to the end of the minute
    assert limiter.leases == 20  # a spent window is not asked again

    fresh = await asyncio.gather(*(one_at(limiter, T0 + timedelta(seconds=30)) for _ in range(120)))
    assert sum(fresh) == 100  # the next minute: the whole quota again


async def one_at(limiter: KeyLimiter, now: datetime, key: str = "key1") -> bool:
    return await limiter.admit(key, now) is None


async def test_the_longest_refusing_rate_gives_the_wait(db: Database) -> None:
    limiter = KeyLimiter(db, (Rate(3, 1), Rate(5, 3600)))
    got = [await one_at(limiter, T0) for _ in range(4)]
    assert got == [True, True, True, False]
    refused = await limiter.admit("key1", T0)
    assert refused is not None and refused.retry_after == 1  # only the second is spent
    later = T0 + timedelta(seconds=1)
    assert [await one_at(limiter, later) for _ in range(3)] == [True, True, False]
    refused = await limiter.admit("key1", later + timedelta(seconds=5))
    assert refused is not None
    assert refused.retry_after == 3600 - 36  # the hour: 12:00:36 -> 13:00:00
    assert refused.limit == 5


async def test_keys_are_counted_apart(db: Database) -> None:
    limiter = KeyLimiter(db, (Rate(2, 60),))
    assert [await one_at(limiter, T0, "a") for _ in range(3)] == [True, True, False]
    assert [await one_at(limiter, T0, "b") for _ in range(3)] == [True, True, False]


async def test_no_rates_admit_everything_without_the_database(db: Database) -> None:
    limiter = KeyLimiter(db, ())
    assert all([await one_at(limiter, T0) for _ in range(50)])
    assert limiter.leases == 0


async def test_two_limiters_on_one_database_never_exceed_the_limit(db: Database) -> None:
    """Two processes' limiters (each its own slices) on the shared counter: together exactly
    the limit when both keep asking, never more."""
    first, second = KeyLimiter(db, (Rate(40, 60),)), KeyLimiter(db, (Rate(40, 60),))
    calls = [one_at(limiter, T0) for _ in range(60) for limiter in (first, second)]
    admitted = await asyncio.gather(*calls)
    assert sum(admitted) == 40
    both = await asyncio.gather(*(one_at(limiter, T0) for limiter in (first, second)))
    assert both == [False, False]
