"""The outbox under test: a fresh embedded database with its tables, mail put in it in a
transaction of its own, and a look at a row. Test modules take the fixture by assignment
(`database = outbox_helpers.database`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailvet.adapters.db.database import Database, make_database
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.clock import Clock
from mailvet.domain.mail import OutgoingMail
from mailvet.services.outbox import enqueue


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = make_database(f"sqlite+aiosqlite:///{tmp_path}/mailvet.db")
    await db.create_all()
    try:
        yield db
    finally:
        await db.dispose()


async def put(database: Database, mail: OutgoingMail, clock: Clock) -> str:
    """`mail` enqueued and committed, due at `clock()`; its row's id."""
    async with database.unit_of_work() as session:
        return await enqueue(session, mail, now=clock())


async def row(database: Database, row_id: str) -> OutboxRow:
    async with database.unit_of_work() as session:
        found = await session.get(OutboxRow, row_id)
        assert found is not None
        return found
