"""The outbox's idempotency key on PostgreSQL (ON CONFLICT DO NOTHING): one row per key, also
when two transactions race with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from mailvet.adapters.db import migrate
from mailvet.adapters.db.database import Database, make_database
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.domain.mail import OutgoingMail
from mailvet.services.outbox import enqueue
from tests.pg import scratch_database, url_of

pytestmark = pytest.mark.integration

DONE = OutgoingMail(to="ann@example.com", template="job_completed", context={"job_id": "j1"})


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    with scratch_database("mailvet_outbox_keys") as name:
        url = url_of(name)
        with ThreadPoolExecutor(1) as pool:
            await asyncio.wrap_future(pool.submit(migrate.upgrade, url))
        database = make_database(url)
        try:
            yield database
        finally:
            await database.dispose()


async def test_racing_enqueues_of_one_key_add_one_row(db: Database) -> None:
    async def put() -> str:
        async with db.unit_of_work() as session:
            return await enqueue(session, DONE, key="job_completed:j1")

    ids = await asyncio.gather(*(put() for _ in range(8)))
    assert len(set(ids)) == 1
    async with db.session_maker() as session:
        count = await session.scalar(select(func.count()).select_from(OutboxRow))
    assert count == 1
