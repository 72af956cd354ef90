"""The "job completed" mail survives a crash between the job's completion and the mail's
enqueue (issue 8, "no mail lost"): services.job_mail.queue_unmailed, swept every minute by
the web role, queues the mail of a completed job of an account that has none; the outbox key
makes a second enqueue (the result generator's, late, or another replica's sweep) a no-op,
so the owner gets exactly one mail. Jobs that must not be mailed are passed over."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import argon2
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.adapters.mail.memory import MemoryMailer
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import build_deps
from mailvet.clock import utc_now
from mailvet.domain.job import Job, JobStatus
from mailvet.pipeline.runner import Pipeline
from mailvet.pipeline.submit import submit_file
from mailvet.services.accounts import create_account
from mailvet.services.job_mail import SWEEP_GRACE, SWEEP_WINDOW, JobMail, completion_key
from mailvet.services.jobs import sweep_unmailed_completions
from mailvet.services.outbox import OutboxSender
from mailvet.settings import load_settings
from tests import outbox_helpers
from tests.fakes import T0, FakeProber, FakeResolver, RecordingBus

pytestmark = pytest.mark.pipeline

database = outbox_helpers.database  # a fresh embedded database with every table
HASHER = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


class CrashingMail:
    """The JobEvents port of a result generator that dies right after the job is COMPLETED:
    it records the completion and raises before anything is queued."""

    def __init__(self) -> None:
        self.told: list[str] = []
        self.crashed = asyncio.Event()

    async def job_completed(self, job: Job) -> None:
        self.told.append(job.id)
        self.crashed.set()
        raise ConnectionError("the process died here")

    async def job_failed(self, job: Job) -> None:
        return None


async def account(db: Database, email: str) -> str:
    async with db.unit_of_work(write=True) as session:
        made = await create_account(
            session, email=email, password=None, confirmed=True, hasher=HASHER, now=T0
        )
    return made.id


async def outbox_rows(db: Database) -> list[OutboxRow]:
    async with db.session_maker() as session:
        return list((await session.scalars(select(OutboxRow))).all())


async def sweep(db: Database, now: datetime, retention_days: float = 30) -> int:
    return await sweep_unmailed_completions(db, now=now, retention_days=retention_days)


async def test_a_crash_between_completed_and_the_enqueue_still_ends_with_one_mail(
    database: Database, tmp_path: Path
) -> None:
    settings = load_settings(
        {
            "MAILVET_DATA_DIR": str(tmp_path / "data"),
            "MAILVET_PUBLIC_URL": "https://app.mailvet.example",
            "MAILVET_CREDITS": "off",
            "MAILVET_MAILER": "memory",
        }
    )
    owner = await account(database, "ann.lee@example.com")
    crash = CrashingMail()
    jobs = SqlJobRepository(database)  # the jobs in the SaaS's database, as in production
    deps = await build_deps(
        settings,
        jobs=jobs,
        storage=MemoryStorage(),
        bus=RecordingBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
        events=crash,
    )
    source = tmp_path / "customers.csv"
    source.write_text("email\na@x-corp.com\nb@x-corp.com\n")
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        job_id = await submit_file(deps.jobs, deps.storage, deps.bus, source, owner=owner)
        await asyncio.wait_for(crash.crashed.wait(), 30)
    finally:
        await pipeline.stop()
        await deps.close()
    assert crash.told == [job_id]
    assert (await jobs.get(job_id)).status is JobStatus.COMPLETED
    assert await outbox_rows(database) == []  # the mail was lost ...

    now = utc_now()
    assert await sweep(database, now) == 0  # ... the generator may still be queueing it
    later = now + SWEEP_GRACE + timedelta(seconds=1)
    assert await sweep(database, later) == 1  # ... and is found again
    assert await sweep(database, later) == 0  # once
    await JobMail(database).job_completed(await jobs.get(job_id))  # a late second enqueue
    [row] = await outbox_rows(database)
    assert (row.to, row.template, row.key) == (
        "ann.lee@example.com",
        "job_completed",
        completion_key(job_id),
    )
    assert row.context == {"job_id": job_id, "filename": "customers.csv"}
    mailer = MemoryMailer()
    assert await OutboxSender(database, mailer, settings, lambda: later).run_once() == 1
    assert await OutboxSender(database, mailer, settings, lambda: later).run_once() == 0
    assert len(mailer.sent) == 1


async def completed_job(
    db: Database,
    *,
    owner: str,
    at: datetime,
    status: JobStatus = JobStatus.COMPLETED,
    filename: str = "list.csv",
) -> str:
    job_id = uuid.uuid4().hex
    async with db.unit_of_work(write=True) as session:
        session.add(
            JobRow(
                id=job_id,
                filename=filename,
                checks="smtp",
                status=status.value,
                owner=owner,
                created_at=at - timedelta(minutes=10),
                updated_at=at,
            )
        )
    return job_id


async def test_the_sweep_passes_over_jobs_that_must_not_be_mailed(database: Database) -> None:
    now = T0 + timedelta(days=10)
    ann = await account(database, "ann.lee@example.com")
    due = now - SWEEP_GRACE - timedelta(seconds=1)
    mailed = await completed_job(database, owner=ann, at=due)
    await JobMail(database, clock=lambda: due).job_completed(
        await SqlJobRepository(database).get(mailed)
    )
    lost = await completed_job(database, owner=ann, at=due, filename='bad\r\nBcc: "x"')
    await completed_job(database, owner=ann, at=now)  # just completed: its mail may be coming
    await completed_job(database, owner=ann, at=due, status=JobStatus.IN_PROGRESS)
    await completed_job(database, owner=ann, at=due, status=JobStatus.ERROR_FILE)
    await completed_job(database, owner="", at=due)  # `mailvet validate`'s: nobody to mail
    await completed_job(database, owner="f" * 32, at=due)  # its account was deleted
    await completed_job(database, owner=ann, at=now - SWEEP_WINDOW - timedelta(hours=1))

    assert await sweep(database, now) == 1
    rows = {row.key: row for row in await outbox_rows(database)}
    assert set(rows) == {completion_key(mailed), completion_key(lost)}
    assert rows[completion_key(lost)].context == {"job_id": lost}  # the unsafe name left out
    assert await sweep(database, now) == 0


async def test_the_sweep_stays_within_the_retention_of_sent_mail(database: Database) -> None:
    """An outbox row sent more than MAILVET_RETENTION_DAYS ago is purged: a job older than
    that is not looked at, or its owner would get the mail twice."""
    now = T0 + timedelta(days=10)
    ann = await account(database, "ann.lee@example.com")
    await completed_job(database, owner=ann, at=now - timedelta(hours=3))
    assert await sweep(database, now, retention_days=0.1) == 0  # created 3 h 10 min ago
    assert await sweep(database, now, retention_days=1) == 1
