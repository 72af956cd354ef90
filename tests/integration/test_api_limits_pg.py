"""The API's limit per key on PostgreSQL (services/api_limits.py): two limiters on two
connection pools, as two web processes, with many requests at once: exactly the limit in a
window between them, one upsert per slice, and the next window open again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mailvet.adapters.db.session_models import RateCounterRow
from mailvet.domain.throttle import Rate
from mailvet.services.api_limits import KeyLimiter, counter_key, slice_of
from tests.pg import migrated_database, opened

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
RATE = Rate(300, 60)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with migrated_database("mailvet_api_limits") as url:
        yield url


async def test_two_processes_share_exactly_the_limit(pg_url: str) -> None:
    async with opened(pg_url) as one, opened(pg_url) as two:
        first, second = KeyLimiter(one, (RATE,)), KeyLimiter(two, (RATE,))

        async def call(limiter: KeyLimiter, now: datetime) -> bool:
            return await limiter.admit("pgkey", now) is None

        calls = [call(limiter, T0) for _ in range(250) for limiter in (first, second)]
        admitted = await asyncio.gather(*calls)
        assert sum(admitted) == RATE.limit
        assert first.leases + second.leases <= RATE.limit // slice_of(RATE.limit) + 2
        async with one.session_maker() as session:
            stored = await session.scalar(
                select(RateCounterRow.count).where(RateCounterRow.key == counter_key("pgkey", RATE))
            )
        assert stored is not None and stored >= RATE.limit

        later = T0 + timedelta(seconds=30)  # the next minute
        again = await asyncio.gather(*(call(first, later) for _ in range(10)))
        assert all(again)
