"""SqlJobRepository retries through the one retry policy (adapters/retry.py): a lost
connection is tried again, a refused statement is not, and once the policy gives up the
database's own error is raised. No test sleeps: the pauses go to a recording `sleep`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from mailvet.adapters.db.database import Database, make_database
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.adapters.retry import RetryPolicy
from mailvet.domain.job import FileInfo, Job
from tests.unit.test_retry import Pauses, policy

pytestmark = pytest.mark.unit


class FlakySessions(async_sessionmaker[AsyncSession]):
    """A session maker whose first sessions cannot be had (the database is restarting)."""

    def __init__(self, database: Database, errors: list[BaseException]) -> None:
        super().__init__(database.engine, expire_on_commit=False)
        self.errors = errors
        self.calls = 0

    def __call__(self, **local_kw: Any) -> AsyncSession:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return super().__call__(**local_kw)


def flaky(database: Database, errors: list[BaseException]) -> tuple[Database, FlakySessions]:
    """`database` with sessions that fail with `errors` first."""
    sessions = FlakySessions(database, errors)
    return Database(engine=database.engine, session_maker=sessions), sessions


def lost_connection() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError("server restarting"))


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = make_database(f"sqlite+aiosqlite:///{tmp_path}/mailvet.db")
    await db.create_all()
    yield db
    await db.dispose()


async def test_repository_call_survives_a_database_restart(database: Database) -> None:
    pauses = Pauses()
    restarting, _ = flaky(database, [lost_connection(), lost_connection()])
    repo = SqlJobRepository(restarting, retry=policy(pauses))
    job = Job(id=uuid.uuid4().hex, file=FileInfo(filename="list.csv"))
    with capture_logs() as logs:
        await repo.add(job)
    assert (await repo.get(job.id)).id == job.id
    assert pauses.taken == [0.2, 0.4]
    assert [(e["event"], e["op"], e["attempt"]) for e in logs] == [
        ("database_retry", "add", 1),
        ("database_retry", "add", 2),
    ]


async def test_repository_does_not_retry_a_refused_change(database: Database) -> None:
    pauses = Pauses()
    refused = ProgrammingError("INSERT", {}, Exception("permission denied for table jobs"))
    refusing, sessions = flaky(database, [refused])
    repo = SqlJobRepository(refusing, retry=policy(pauses))
    with pytest.raises(ProgrammingError):
        await repo.add(Job(id=uuid.uuid4().hex, file=FileInfo(filename="list.csv")))
    assert sessions.calls == 1 and pauses.taken == []


async def test_repository_gives_up_with_the_databases_own_error(database: Database) -> None:
    pauses = Pauses()
    errors: list[BaseException] = [lost_connection() for _ in range(3)]
    last = errors[-1]
    down, sessions = flaky(database, errors)
    repo = SqlJobRepository(down, retry=policy(pauses, max_attempts=3))
    with pytest.raises(OperationalError) as caught:
        await repo.add(Job(id=uuid.uuid4().hex, file=FileInfo(filename="list.csv")))
    assert caught.value is last and sessions.calls == 3
    assert pauses.taken == [0.2, 0.4]


async def test_a_repository_built_without_a_policy_has_the_default_one(
    database: Database,
) -> None:
    assert SqlJobRepository(database).retry == RetryPolicy()
