"""The crash-recovery sweeps' queries on PostgreSQL: the unmailed completions' join on the
outbox key (a string concatenation, `||`, and a join of jobs, accounts and outbox) and the
unsubmitted jobs' selection, each finding the row it must and passing over the others."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import argon2
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.adapters.db.rows import job_from_row
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.domain.job import JobStatus
from mailvet.domain.messages import JobSubmitted
from mailvet.pipeline import object_keys
from mailvet.services.accounts import create_account
from mailvet.services.job_mail import SWEEP_GRACE, JobMail, completion_key
from mailvet.services.jobs import (
    UNSUBMITTED_GRACE,
    sweep_unmailed_completions,
    sweep_unsubmitted,
)
from tests.fakes import T0, RecordingBus
from tests.pg import migrated_database, opened

pytestmark = pytest.mark.integration

NOW = T0 + timedelta(days=3)


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    with migrated_database("mailvet_recovery") as url:
        async with opened(url) as database:
            yield database


async def job_row(db: Database, *, owner: str, status: JobStatus, age: timedelta) -> str:
    job_id = uuid.uuid4().hex
    async with db.unit_of_work(write=True) as session:
        session.add(
            JobRow(
                id=job_id,
                filename="list.csv",
                checks="smtp",
                status=status.value,
                owner=owner,
                created_at=NOW - age - timedelta(minutes=1),
                updated_at=NOW - age,
            )
        )
    return job_id


async def test_unmailed_completions_are_found_through_the_outbox_key(db: Database) -> None:
    async with db.unit_of_work(write=True) as session:
        ann = await create_account(
            session,
            email="ann.lee@example.com",
            password=None,
            confirmed=True,
            hasher=PasswordHasher.from_parameters(argon2.profiles.CHEAPEST),
            now=T0,
        )
    age = SWEEP_GRACE + timedelta(minutes=1)
    mailed = await job_row(db, owner=ann.id, status=JobStatus.COMPLETED, age=age)
    async with db.session_maker() as session:
        row = await session.get(JobRow, mailed)
        assert row is not None
    await JobMail(db, clock=lambda: NOW).job_completed(job_from_row(row))
    lost = await job_row(db, owner=ann.id, status=JobStatus.COMPLETED, age=age)
    await job_row(db, owner="f" * 32, status=JobStatus.COMPLETED, age=age)  # account gone
    await job_row(db, owner=ann.id, status=JobStatus.IN_PROGRESS, age=age)

    assert await sweep_unmailed_completions(db, now=NOW, retention_days=30) == 1
    assert await sweep_unmailed_completions(db, now=NOW, retention_days=30) == 0
    async with db.session_maker() as session:
        keys = set((await session.scalars(select(OutboxRow.key))).all())
    assert keys == {completion_key(mailed), completion_key(lost)}


async def test_unsubmitted_jobs_are_found_and_submitted_once(db: Database) -> None:
    age = UNSUBMITTED_GRACE + timedelta(minutes=1)
    stuck = await job_row(db, owner="a" * 32, status=JobStatus.PENDING_START, age=age)
    await job_row(db, owner="a" * 32, status=JobStatus.PENDING_START, age=timedelta(0))
    await job_row(db, owner="a" * 32, status=JobStatus.FILE_ACCEPTED, age=age)
    storage, bus = MemoryStorage(), RecordingBus()
    await storage.put_bytes(object_keys.uploaded(stuck), b"email\nann@example.com\n")
    assert await sweep_unsubmitted(db, storage, bus, now=NOW) == 1
    assert await sweep_unsubmitted(db, storage, bus, now=NOW) == 0
    assert bus.of_type(JobSubmitted) == [JobSubmitted(job_id=stuck)]
