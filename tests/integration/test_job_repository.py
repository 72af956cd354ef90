"""The same contract tests against SQLite, PostgreSQL and the in-memory twin."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from mailvet.adapters.db.database import make_database
from mailvet.adapters.db.memory import MemoryJobRepository
from mailvet.adapters.db.models import JobChunkRow, JobRow
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.domain.job import FileInfo, IllegalTransition, Job, JobStatus
from mailvet.domain.ports import JobNotFound, JobRepository
from mailvet.domain.verdict import Check
from tests.pg import scratch_database, url_of

pytestmark = pytest.mark.integration

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
T0 = datetime(2024, 1, 1, tzinfo=UTC)

HAPPY_PATH = [
    JobStatus.FILE_ACCEPTED,
    JobStatus.FILE_QUEUED,
    JobStatus.IN_PROGRESS,
    JobStatus.COMPLETED,
]
ERRORS = [status for status in JobStatus if status.is_error]


class FakeClock:
    """Each call is one second after the previous one."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return T0 + timedelta(seconds=self.calls)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with scratch_database("mailvet_test") as name:
        yield url_of(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
async def repo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, clock: FakeClock
) -> AsyncIterator[JobRepository]:
    if request.param == "memory":
        yield MemoryJobRepository(now=clock)
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db')}/nested/mailvet.db"
    else:
        url = request.getfixturevalue("postgres_url")
    db = make_database(url)
    try:
        await db.create_all()
        async with db.session_maker() as session, session.begin():
            await session.execute(delete(JobChunkRow))
            await session.execute(delete(JobRow))
        yield SqlJobRepository(db, now=clock)
    finally:
        await db.dispose()


def new_job(**changes: object) -> Job:
    job = Job(id=uuid.uuid4().hex, file=FileInfo(filename="list.csv"))
    for name, value in changes.items():
        setattr(job, name, value)
    return job


async def test_add_and_get(repo: JobRepository) -> None:
    job = new_job(
        file=FileInfo(filename="Clients 2024.xlsx", email_column="E-mail", checks=Check.DNS),
        owner="user-1",
        layout=b"\x81\xa3sep\xa1,",
    )
    await repo.add(job)

    got = await repo.get(job.id)

    assert type(got) is Job
    assert got.file == job.file
    assert (got.status, got.error, got.owner, got.layout) == (
        JobStatus.PENDING_START,
        "",
        "user-1",
        b"\x81\xa3sep\xa1,",
    )
    assert (got.rows_total, got.rows_done, got.chunks_total) == (0, 0, 0)
    assert got.created_at == got.updated_at == T0 + timedelta(seconds=1)
    assert got.created_at is not None and got.created_at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError):
        await repo.add(new_job(id=job.id))


async def test_missing_job(repo: JobRepository) -> None:
    with pytest.raises(JobNotFound):
        await repo.get("nope")
    with pytest.raises(JobNotFound):
        await repo.set_status("nope", JobStatus.FILE_ACCEPTED)
    with pytest.raises(JobNotFound):
        await repo.set_counts("nope", rows_total=1, chunks_total=1, layout=b"")
    with pytest.raises(JobNotFound):
        await repo.record_chunk("nope", 0, 10)
    with pytest.raises(JobNotFound):
        await repo.get("nope")  # nothing was recorded for it either


async def test_happy_path(repo: JobRepository) -> None:
    job = new_job()
    await repo.add(job)

    for n, status in enumerate(HAPPY_PATH, start=2):
        moved = await repo.set_status(job.id, status)
        assert moved.status is status
        assert moved.updated_at == T0 + timedelta(seconds=n)  # set on each write
        assert moved.created_at == T0 + timedelta(seconds=1)

    assert (await repo.get(job.id)).status is JobStatus.COMPLETED


async def test_illegal_jump_changes_nothing(repo: JobRepository) -> None:
    job = new_job()
    await repo.add(job)

    with pytest.raises(IllegalTransition):
        await repo.set_status(job.id, JobStatus.IN_PROGRESS)
    with pytest.raises(IllegalTransition):
        await repo.set_status(job.id, JobStatus.COMPLETED)

    assert (await repo.get(job.id)).status is JobStatus.PENDING_START
    await repo.set_status(job.id, JobStatus.PENDING_START)  # staying put is allowed


@pytest.mark.parametrize("steps", range(len(HAPPY_PATH)))
async def test_error_from_any_non_final_state(repo: JobRepository, steps: int) -> None:
    job = new_job()
    await repo.add(job)
    for status in HAPPY_PATH[:steps]:
        await repo.set_status(job.id, status)

    failed = await repo.set_status(job.id, JobStatus.ERROR_INTERNAL, error="disk full")

    assert (failed.status, failed.error) == (JobStatus.ERROR_INTERNAL, "disk full")
    assert await repo.get(job.id) == failed


async def test_final_states_are_final(repo: JobRepository) -> None:
    done, failed = new_job(), new_job()
    for job in (done, failed):
        await repo.add(job)
    for status in HAPPY_PATH:
        await repo.set_status(done.id, status)
    await repo.set_status(failed.id, JobStatus.ERROR_FILE, error="no email column")

    for status in ERRORS:
        with pytest.raises(IllegalTransition):
            await repo.set_status(done.id, status)
    for status in [JobStatus.FILE_ACCEPTED, JobStatus.COMPLETED, JobStatus.ERROR_INTERNAL]:
        with pytest.raises(IllegalTransition):
            await repo.set_status(failed.id, status)
    assert (await repo.get(failed.id)).error == "no email column"


async def test_set_counts(repo: JobRepository) -> None:
    job = new_job()
    await repo.add(job)

    await repo.set_counts(job.id, rows_total=12_345, chunks_total=13, layout=b"layout")

    got = await repo.get(job.id)
    assert (got.rows_total, got.chunks_total, got.layout) == (12_345, 13, b"layout")
    assert got.updated_at == T0 + timedelta(seconds=2)


async def test_record_chunk_is_idempotent(repo: JobRepository) -> None:
    job = new_job()
    await repo.add(job)

    assert await repo.record_chunk(job.id, 0, 1000) is True
    assert await repo.record_chunk(job.id, 0, 1000) is False
    assert await repo.record_chunk(job.id, 1, 234) is True

    assert (await repo.get(job.id)).rows_done == 1234
    # both chunks are on record: recording either again changes nothing
    assert [await repo.record_chunk(job.id, n, 5) for n in (0, 1)] == [False, False]
    assert (await repo.get(job.id)).rows_done == 1234


async def test_concurrent_chunks_give_the_exact_total(repo: JobRepository) -> None:
    job, other = new_job(), new_job()
    await repo.add(job)
    await repo.add(other)
    await repo.record_chunk(other.id, 0, 5)

    results = await asyncio.gather(*(repo.record_chunk(job.id, n, n + 1) for n in range(20)))

    assert results == [True] * 20
    assert (await repo.get(job.id)).rows_done == sum(range(1, 21))
    again = await asyncio.gather(*(repo.record_chunk(job.id, n, 1) for n in range(20)))
    assert again == [False] * 20  # all twenty are on record
    assert (await repo.get(other.id)).rows_done == 5


async def test_concurrent_redeliveries_count_once(repo: JobRepository) -> None:
    job = new_job()
    await repo.add(job)

    results = await asyncio.gather(*(repo.record_chunk(job.id, 7, 100) for _ in range(10)))

    assert sorted(results) == [False] * 9 + [True]
    assert (await repo.get(job.id)).rows_done == 100


async def test_list_jobs_newest_first(repo: JobRepository) -> None:
    jobs = [new_job() for _ in range(5)]
    for job in jobs:
        await repo.add(job)

    listed = await repo.list_jobs()
    assert [j.id for j in listed] == [j.id for j in reversed(jobs)]
    assert all(type(j) is Job for j in listed)
    assert [j.id for j in await repo.list_jobs(limit=2)] == [jobs[4].id, jobs[3].id]
