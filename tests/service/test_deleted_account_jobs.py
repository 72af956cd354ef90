"""A deleted account's jobs keep their counts but nothing about their files: file name,
column, sheet and the stored layout are blanked as the retention purge blanks them
(services.jobs.forget_files, review B9: the deletion used to keep the layout bytes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import argon2
import pytest
from argon2 import PasswordHasher

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.domain.job import JobStatus
from mailvet.pipeline import object_keys
from mailvet.services.accounts import AccountKeys, AccountService, create_account

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HASHER = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


async def test_deleting_an_account_blanks_its_jobs_files_layout_included(db: Database) -> None:
    storage = MemoryStorage()
    service = AccountService(
        hasher=HASHER,
        keys=AccountKeys.from_secret("a test secret key of enough length"),
        public_url="https://mailvet.test",
        free_credits=0,
        storage=storage,
        clock=lambda: T0,
    )
    job_id = uuid.uuid4().hex
    async with db.unit_of_work(write=True) as session:
        account = await create_account(
            session,
            email="ann@example.com",
            password="correct horse battery",
            confirmed=True,
            hasher=HASHER,
            now=T0,
        )
        session.add(
            JobRow(
                id=job_id,
                filename="customers.csv",
                email_column="email",
                sheet="Sheet1",
                layout=b"a stored layout",
                checks="smtp",
                status=JobStatus.COMPLETED.value,
                owner=account.id,
                rows_total=3,
                rows_done=3,
                created_at=T0,
                updated_at=T0,
            )
        )
    for key in (object_keys.uploaded(job_id), object_keys.completed(job_id)):
        await storage.put_bytes(key, b"email\na@b.com\n")

    async with db.unit_of_work(write=True) as session:
        await service.delete_account(session, account.id)

    async with db.unit_of_work() as session:
        row = await session.get(JobRow, job_id)
    assert row is not None
    assert (row.filename, row.email_column, row.sheet, row.layout) == ("", None, None, b"")
    assert (row.rows_total, row.rows_done) == (3, 3)
    assert storage.objects == {}  # every file under the job's prefixes went
