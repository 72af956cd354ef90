"""Completion webhooks on PostgreSQL (issue 9 §3): the event queued once when two
transactions report one completion at once, and two senders claiming at once (FOR UPDATE
SKIP LOCKED) deliver it once, its attempts (JSON) on record."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import argon2
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.webhook_models import WebhookDeliveryRow
from mailvet.services import webhooks
from mailvet.services.accounts import create_account
from mailvet.settings import load_settings
from tests.fakes import T0, MovingClock
from tests.pg import migrated_database, opened
from tests.webhook_helpers import TableResolver, receiving

pytestmark = pytest.mark.integration

HASHER = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with migrated_database("mailvet_hooks") as url:
        yield url


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    async with opened(pg_url) as database:
        yield database


async def test_one_event_and_one_delivery_under_concurrency(db: Database, tmp_path: Path) -> None:
    async with db.unit_of_work(write=True) as session:
        ann = await create_account(
            session,
            email=f"{uuid.uuid4().hex[:8]}@example.com",
            password=None,
            confirmed=True,
            hasher=HASHER,
            now=T0,
        )
    clock = MovingClock(T0)
    async with receiving([500, 200]) as receiver:
        async with db.unit_of_work(write=True) as session:
            await webhooks.set_default_url(
                session,
                ann.id,
                receiver.url,
                TableResolver(),
                allow_private=True,
                now=T0 - timedelta(hours=1),
            )
            job_id = uuid.uuid4().hex
            session.add(
                JobRow(
                    id=job_id,
                    filename="a.csv",
                    checks="smtp",
                    status="file_completed",
                    owner=ann.id,
                    created_at=T0,
                    updated_at=T0,
                )
            )

        async def report() -> str | None:
            async with db.unit_of_work(write=True) as session:
                return await webhooks.queue_job_event(session, job_id, now=T0)

        ids = await asyncio.gather(*(report() for _ in range(4)))
        assert len(set(ids)) == 1 and ids[0] is not None
        settings = load_settings(
            {"MAILVET_DATA_DIR": str(tmp_path), "MAILVET_WEBHOOK_ALLOW_PRIVATE": "true"}
        )
        senders = [webhooks.WebhookSender(db, TableResolver(), settings, clock) for _ in range(3)]
        assert sum(await asyncio.gather(*(s.run_once() for s in senders))) == 0  # the 500
        assert len(receiver.received) == 1
        clock.advance(seconds=30)
        assert sum(await asyncio.gather(*(s.run_once() for s in senders))) == 1
        assert len(receiver.received) == 2
    async with db.session_maker() as session:
        [row] = (
            await session.scalars(
                select(WebhookDeliveryRow).where(WebhookDeliveryRow.job_id == job_id)
            )
        ).all()
    assert (row.status, row.attempts) == ("delivered", 2)
    assert [a["status_code"] for a in row.attempt_log] == [500, 200]
