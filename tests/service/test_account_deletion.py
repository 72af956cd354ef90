"""Deleting an account while one of its lists is being validated is refused (review C2):
the pipeline would go on writing its result after the files were deleted, under a job row
without a file name that the retention purge never reaches. Nothing is deleted then; once
the job has ended, the deletion goes through. A start left pending for long (a crash
between the job row and intake) does not block a deletion for ever."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import argon2
import pytest
from argon2 import PasswordHasher
from sqlalchemy import text as text_sql

from mailvet.adapters.db.billing_models import BillingAccountRow
from mailvet.adapters.db.database import Database
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.domain.job import JobStatus
from mailvet.pipeline import object_keys
from mailvet.services.accounts import (
    AccountBusy,
    AccountKeys,
    AccountService,
    create_account,
    get_account,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HASHER = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def service(clock: Clock, storage: MemoryStorage) -> AccountService:
    return AccountService(
        hasher=HASHER,
        keys=AccountKeys.from_secret("a test secret key of enough length"),
        public_url="https://mailvet.test",
        free_credits=100,
        storage=storage,
        clock=clock,
    )


async def an_account(db: Database) -> str:
    async with db.session_maker() as session, session.begin():
        account = await create_account(
            session,
            email="ann@example.com",
            password="correct horse battery",
            confirmed=True,
            hasher=HASHER,
            now=T0,
        )
    return account.id


async def a_job(
    db: Database, storage: MemoryStorage, owner: str, status: JobStatus, *, created: datetime = T0
) -> str:
    job_id = uuid.uuid4().hex
    async with db.session_maker() as session, session.begin():
        session.add(
            JobRow(
                id=job_id,
                filename="customers.csv",
                checks="smtp",
                status=status.value,
                owner=owner,
                rows_total=3,
                created_at=created,
                updated_at=created,
            )
        )
    await storage.put_bytes(object_keys.in_progress_input(job_id), b"email\na@b.com\n")
    return job_id


async def set_status(db: Database, job_id: str, status: JobStatus) -> None:
    async with db.session_maker() as session, session.begin():
        row = await session.get(JobRow, job_id)
        assert row is not None
        row.status = status.value


async def delete(db: Database, service: AccountService, account_id: str) -> None:
    async with db.session_maker() as session, session.begin():
        await service.delete_account(session, account_id)


async def exists(db: Database, account_id: str) -> bool:
    async with db.session_maker() as session:
        return await get_account(session, account_id) is not None


@pytest.mark.parametrize(
    "status", [JobStatus.FILE_ACCEPTED, JobStatus.FILE_QUEUED, JobStatus.IN_PROGRESS]
)
async def test_an_account_with_a_running_job_is_not_deleted(
    db: Database, service: AccountService, storage: MemoryStorage, status: JobStatus
) -> None:
    account_id = await an_account(db)
    done = await a_job(db, storage, account_id, JobStatus.COMPLETED)
    running = await a_job(db, storage, account_id, status)
    before = dict(storage.objects)

    with pytest.raises(AccountBusy) as refused:
        await delete(db, service, account_id)

    assert "still being validated" in refused.value.message
    assert await exists(db, account_id)
    assert storage.objects == before  # not one file deleted, the finished job's neither
    async with db.session_maker() as session:
        rows = [await session.get(JobRow, job_id) for job_id in (done, running)]
        assert [row.filename for row in rows if row is not None] == ["customers.csv"] * 2

    await set_status(db, running, JobStatus.COMPLETED)
    await delete(db, service, account_id)
    assert not await exists(db, account_id)
    assert storage.objects == {}


async def test_a_start_under_way_blocks_a_deletion_and_a_stale_one_does_not(
    db: Database, service: AccountService, storage: MemoryStorage, clock: Clock
) -> None:
    """A job row pending_start is a Start being carried out (its file is handed to intake
    next): refused. One left pending for an hour never reached intake: no obstacle."""
    account_id = await an_account(db)
    await a_job(db, storage, account_id, JobStatus.PENDING_START)
    clock.now = T0 + timedelta(minutes=10)
    with pytest.raises(AccountBusy):
        await delete(db, service, account_id)

    clock.now = T0 + timedelta(hours=1, seconds=1)
    await delete(db, service, account_id)
    assert not await exists(db, account_id)


async def test_failed_jobs_do_not_block_a_deletion(
    db: Database, service: AccountService, storage: MemoryStorage
) -> None:
    account_id = await an_account(db)
    for status in (JobStatus.ERROR_FILE, JobStatus.ERROR_INTERNAL):
        await a_job(db, storage, account_id, status)
    await a_job(db, storage, uuid.uuid4().hex, JobStatus.IN_PROGRESS)  # someone else's
    await delete(db, service, account_id)
    assert not await exists(db, account_id)
    assert len(storage.objects) == 1  # the other account's file stays


async def test_the_accounts_api_keys_go_with_it_and_no_one_elses(
    db: Database, service: AccountService, storage: MemoryStorage, tmp_path: Path
) -> None:
    """Deleted by delete_account itself, not only by the foreign key's cascade: checked on
    a connection where SQLite enforces no foreign keys (its default outside make_database)."""
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from mailvet.adapters.db.api_key_models import ApiKeyRow
    from mailvet.domain.api_keys import Refusal
    from mailvet.services import api_keys

    account_id = await an_account(db)
    async with db.session_maker() as session, session.begin():
        other = await create_account(
            session, email="bob@example.com", password=None, hasher=HASHER, now=T0
        )
        mine = await api_keys.create_key(session, account_id, label="CRM", now=T0)
        kept = await api_keys.create_key(session, other.id, label="other", now=T0)
    running = await a_job(db, storage, account_id, JobStatus.IN_PROGRESS)
    with pytest.raises(AccountBusy):  # refused: the keys stay too
        await delete(db, service, account_id)
    assert isinstance(await api_keys.authenticate(db, mine.key, now=T0), api_keys.ApiPrincipal)
    await set_status(db, running, JobStatus.COMPLETED)

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/mailvet.db")
    unenforced = Database(engine=engine, session_maker=async_sessionmaker(engine))
    try:
        async with unenforced.session_maker() as session:
            pragma = await session.execute(text_sql("PRAGMA foreign_keys"))
            assert pragma.scalar() == 0
        await delete(unenforced, service, account_id)
    finally:
        await unenforced.dispose()

    async with db.session_maker() as session:
        left = (await session.execute(select(ApiKeyRow.id))).scalars().all()
    assert left == [kept.info.id]
    assert await api_keys.authenticate(db, mine.key, now=T0) == Refusal.INVALID
    assert isinstance(await api_keys.authenticate(db, kept.key, now=T0), api_keys.ApiPrincipal)


@pytest.mark.parametrize(
    ("status", "cancel_at", "refused"),
    [
        ("active", None, True),
        ("past_due", None, True),
        ("active", 1_900_000_000, False),  # cancelled: it ends, nothing more is charged
        ("canceled", None, False),
        ("incomplete_expired", None, False),
    ],
)
async def test_a_plan_that_renews_blocks_a_deletion(
    db: Database, service: AccountService, status: str, cancel_at: int | None, refused: bool
) -> None:
    """Deleting an account whose Stripe subscription renews would leave Stripe charging a
    customer without an account: refused until the plan is cancelled."""
    account_id = await an_account(db)
    async with db.session_maker() as session, session.begin():
        session.add(
            BillingAccountRow(
                account_id=account_id,
                customer="cus_1",
                subscription_id="sub_1",
                tier="pro",
                status=status,
                cancel_at=cancel_at,
                version=1,
                shortfall=0,
                updated_at=T0,
            )
        )
    if refused:
        with pytest.raises(AccountBusy) as busy:
            await delete(db, service, account_id)
        assert "cancel it first" in busy.value.message
        assert await exists(db, account_id)
    else:
        await delete(db, service, account_id)
        assert not await exists(db, account_id)
        async with db.session_maker() as session:
            assert await session.get(BillingAccountRow, account_id) is None  # went with it
