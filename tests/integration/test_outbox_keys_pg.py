"""The outbox's idempotency key on PostgreSQL (ON CONFLICT DO NOTHING): one row per key, also
when two transactions race with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.domain.mail import OutgoingMail
from mailvet.services.outbox import enqueue
from tests.pg import migrated_database, opened

pytestmark = pytest.mark.integration

DONE = OutgoingMail(to="ann@example.com", template="job_completed", context={"job_id": "j1"})


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    with migrated_database("mailvet_outbox_keys") as url:
        async with opened(url) as database:
            yield database


async def test_racing_enqueues_of_one_key_add_one_row(db: Database) -> None:
    async def put() -> str:
        async with db.unit_of_work() as session:
            return await enqueue(session, DONE, key="job_completed:j1")

    ids = await asyncio.gather(*(put() for _ in range(8)))
    assert len(set(ids)) == 1
    async with db.session_maker() as session:
        count = await session.scalar(select(func.count()).select_from(OutboxRow))
    assert count == 1
