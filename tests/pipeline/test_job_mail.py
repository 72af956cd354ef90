"""The "job completed" mail (review U1): a job of an account that completes through the whole
pipeline in one process queues one `job_completed` mail to its owner, with the link to the
job's page; a completion told again (redelivered chunks, a second call) queues nothing more;
a job without an owner mails nobody and builds no database for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import argon2
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from mailvet.adapters.db.database import Database, make_database
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.adapters.mail.log import plain_text
from mailvet.adapters.mail.memory import MemoryMailer
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, LazyJobEvents, SharedDatabase, build_deps
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.domain.job_events import JobEvents
from mailvet.domain.messages import ChunkDone
from mailvet.pipeline.runner import Pipeline
from mailvet.pipeline.submit import submit_file
from mailvet.services.accounts import create_account
from mailvet.services.job_mail import JobMail, completion_key
from mailvet.services.outbox import OutboxSender
from mailvet.settings import Settings, load_settings
from tests.fakes import FakeProber, FakeResolver, RecordingBus, WatchedJobs

pytestmark = pytest.mark.pipeline

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PUBLIC = "https://app.mailvet.example"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = make_database(f"sqlite+aiosqlite:///{tmp_path}/saas.db")
    await database.create_all()
    try:
        yield database
    finally:
        await database.dispose()


async def account(db: Database, email: str) -> str:
    async with db.session_maker() as session, session.begin():
        made = await create_account(
            session,
            email=email,
            password=None,
            confirmed=True,
            credits=0,
            hasher=PasswordHasher.from_parameters(argon2.profiles.CHEAPEST),
            now=T0,
        )
    return made.id


async def outbox_rows(db: Database) -> list[OutboxRow]:
    async with db.session_maker() as session:
        return list((await session.scalars(select(OutboxRow))).all())


def settings_for(tmp_path: Path) -> Settings:
    return load_settings(
        {
            "MAILVET_CHUNK_SIZE": "2",
            "MAILVET_DATA_DIR": str(tmp_path / "data"),
            "MAILVET_PUBLIC_URL": PUBLIC,
            "MAILVET_CREDITS": "off",
        }
    )


async def deps_for(tmp_path: Path, events: JobEvents, bus: RecordingBus) -> Deps:
    return await build_deps(
        settings_for(tmp_path),
        jobs=WatchedJobs(),
        storage=MemoryStorage(),
        bus=bus,
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
        events=events,
    )


async def run_job(deps: Deps, path: Path, owner: str) -> Job:
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        job_id = await submit_file(deps.jobs, deps.storage, deps.bus, path, owner=owner)
        jobs = deps.jobs
        assert isinstance(jobs, WatchedJobs)
        assert await jobs.final(job_id) is JobStatus.COMPLETED
        assert isinstance(deps.bus, RecordingBus)
        await deps.bus.idle()
        return await deps.jobs.get(job_id)
    finally:
        await pipeline.stop()


async def test_a_completed_job_of_an_account_mails_its_owner_once(
    db: Database, tmp_path: Path
) -> None:
    owner = await account(db, "ann.lee@example.com")
    mail = JobMail(db, clock=lambda: T0)
    # every chunk's result delivered twice: the completion is seen more than once
    bus = RecordingBus(roundtrip=True, duplicate=lambda message: isinstance(message, ChunkDone))
    deps = await deps_for(tmp_path, mail, bus)
    source = tmp_path / "customers.csv"
    source.write_text("email\na@x-corp.com\nb@x-corp.com\nc@x-corp.com\n")
    try:
        job = await run_job(deps, source, owner)
        await mail.job_completed(job)  # told again (a redelivered completion): nothing more
    finally:
        await deps.close()

    [row] = await outbox_rows(db)
    assert (row.to, row.template, row.key) == (
        "ann.lee@example.com",
        "job_completed",
        completion_key(job.id),
    )
    assert row.context == {"job_id": job.id, "filename": "customers.csv"}

    mailer = MemoryMailer()
    assert await OutboxSender(db, mailer, settings_for(tmp_path), lambda: T0).run_once() == 1
    [message] = mailer.sent
    assert f"{PUBLIC}/app/jobs/{job.id}" in plain_text(message)
    assert '"customers.csv"' in plain_text(message)


async def test_no_mail_without_an_owner_or_an_account(db: Database, tmp_path: Path) -> None:
    mail = JobMail(db)
    job = Job(id="j" * 32, file=FileInfo(filename="x.csv"), status=JobStatus.COMPLETED)
    await mail.job_completed(job)  # no owner
    gone = Job(id="k" * 32, file=FileInfo(filename="x.csv"), owner="f" * 32)
    await mail.job_completed(gone)  # an owner whose account was deleted
    assert await outbox_rows(db) == []


async def test_the_embedded_default_builds_nothing_for_a_job_without_an_owner(
    tmp_path: Path,
) -> None:
    database = SharedDatabase(settings_for(tmp_path).database)
    events = LazyJobEvents(database)
    await events.job_completed(Job(id="j" * 32, file=FileInfo(filename="x.csv")))
    assert events._mail is None and not database.built
    await database.close()
    deps = await build_deps(
        settings_for(tmp_path),
        jobs=WatchedJobs(),
        storage=MemoryStorage(),
        bus=RecordingBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )
    try:
        assert isinstance(deps.events, LazyJobEvents)
    finally:
        await deps.close()
