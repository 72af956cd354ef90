"""The verdict journal's contract on every repository: the stdlib SQLite one (migrated
file), the SQL one on SQLite and PostgreSQL, and the in-memory twin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

import pytest
from sqlalchemy import delete

from mailvet.adapters.db import migrate
from mailvet.adapters.db.database import make_database
from mailvet.adapters.db.memory import MemoryJobRepository
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.adapters.db.sqlite import SqliteJobRepository
from mailvet.domain.job import FileInfo, Job
from mailvet.domain.ports import JobRepository, VerdictJournal
from mailvet.domain.verdict import Check
from tests.pg import scratch_database, url_of

pytestmark = pytest.mark.integration

JOB, OTHER = "a" * 32, "b" * 32


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with scratch_database("mailvet_journal_test") as name:
        yield url_of(name)


class Repository(JobRepository, VerdictJournal, Protocol):
    pass


@pytest.fixture(params=["stdlib-sqlite", "sql-sqlite", "postgresql", "memory"])
async def repo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Repository]:
    found: Repository
    if request.param == "memory":
        found = MemoryJobRepository()
        for job_id in (JOB, OTHER):
            await found.add(Job(id=job_id, file=FileInfo(filename="x.csv", checks=Check.SMTP)))
        yield found
        return
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db')}/mailvet.db"
    await asyncio.to_thread(migrate.upgrade, url)  # the schema as the migrations make it
    db = make_database(url)
    stdlib: SqliteJobRepository | None = None
    try:
        async with db.session_maker() as session, session.begin():
            await session.execute(delete(JobRow))
        sql = SqlJobRepository(db)
        for job_id in (JOB, OTHER):
            await sql.add(Job(id=job_id, file=FileInfo(filename="x.csv", checks=Check.SMTP)))
        if request.param == "stdlib-sqlite":
            stdlib = SqliteJobRepository.open_current(url, migrate.HEAD)
            assert stdlib is not None
            found = stdlib
        else:
            found = sql
        yield found
    finally:
        if stdlib is not None:
            await stdlib.close()
        await db.dispose()


async def test_kept_verdicts_come_back_by_row_range(repo: Repository) -> None:
    assert isinstance(repo, VerdictJournal)
    await repo.keep_verdicts(JOB, {0: b"v0", 5: b"v5", 9: b"v9", 10: b"v10"})
    await repo.keep_verdicts(OTHER, {5: b"other"})
    assert await repo.kept_verdicts(JOB, 5, 5) == {5: b"v5", 9: b"v9"}
    assert await repo.kept_verdicts(JOB, 0, 11) == {0: b"v0", 5: b"v5", 9: b"v9", 10: b"v10"}
    assert await repo.kept_verdicts(OTHER, 0, 100) == {5: b"other"}
    assert await repo.kept_verdicts(JOB, 20, 10) == {}


async def test_keeping_a_row_again_changes_nothing(repo: Repository) -> None:
    await repo.keep_verdicts(JOB, {3: b"first"})
    await repo.keep_verdicts(JOB, {3: b"second", 4: b"four"})  # a redelivered chunk's batch
    await repo.keep_verdicts(JOB, {})
    assert await repo.kept_verdicts(JOB, 0, 10) == {3: b"first", 4: b"four"}


async def test_dropping_a_range_forgets_only_it(repo: Repository) -> None:
    await repo.keep_verdicts(JOB, {row: bytes([row]) for row in range(30)})
    await repo.keep_verdicts(OTHER, {12: b"x"})
    await repo.drop_verdicts(JOB, 10, 10)
    assert sorted(await repo.kept_verdicts(JOB, 0, 30)) == [*range(10), *range(20, 30)]
    assert await repo.kept_verdicts(OTHER, 0, 30) == {12: b"x"}
