"""SqlJobRepository retries through the one retry policy (adapters/retry.py): a lost
connection is tried again, a refused statement is not, and once the policy gives up the
database's own error is raised. No test sleeps: the pauses go to a recording `sleep`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError
from structlog.testing import capture_logs

from mailvet.adapters.db.database import make_database
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.domain.job import FileInfo, Job
from tests.unit.test_retry import Pauses, policy

pytestmark = pytest.mark.unit


class FlakySessions:
    """A session maker whose first sessions cannot be had (the database is restarting)."""

    def __init__(self, real: Callable[[], Any], errors: list[BaseException]) -> None:
        self.real = real
        self.errors = errors
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.real()


def lost_connection() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError("server restarting"))


@pytest.fixture
async def session_maker(tmp_path: Path) -> AsyncIterator[Callable[[], Any]]:
    db = make_database(f"sqlite+aiosqlite:///{tmp_path}/mailvet.db")
    await db.create_all()
    yield db.session_maker
    await db.dispose()


async def test_repository_call_survives_a_database_restart(
    session_maker: Callable[[], Any],
) -> None:
    pauses = Pauses()
    sessions = FlakySessions(session_maker, [lost_connection(), lost_connection()])
    repo = SqlJobRepository(sessions, retry=policy(pauses))  # type: ignore[arg-type]
    job = Job(id=uuid.uuid4().hex, file=FileInfo(filename="list.csv"))
    with capture_logs() as logs:
        await repo.add(job)
    assert (await repo.get(job.id)).id == job.id
    assert pauses.taken == [0.2, 0.4]
    assert [(e["event"], e["op"], e["attempt"]) for e in logs] == [
        ("database_retry", "add", 1),
        ("database_retry", "add", 2),
    ]


async def test_repository_does_not_retry_a_refused_change(session_maker: Callable[[], Any]) -> None:
    pauses = Pauses()
    refused = ProgrammingError("INSERT", {}, Exception("permission denied for table jobs"))
    sessions = FlakySessions(session_maker, [refused])
    repo = SqlJobRepository(sessions, retry=policy(pauses))  # type: ignore[arg-type]
    with pytest.raises(ProgrammingError):
        await repo.add(Job(id=uuid.uuid4().hex, file=FileInfo(filename="list.csv")))
    assert sessions.calls == 1 and pauses.taken == []


async def test_repository_gives_up_with_the_databases_own_error(
    session_maker: Callable[[], Any],
) -> None:
    pauses = Pauses()
    errors: list[BaseException] = [lost_connection() for _ in range(3)]
    last = errors[-1]
    sessions = FlakySessions(session_maker, errors)
    repo = SqlJobRepository(sessions, retry=policy(pauses, max_attempts=3))  # type: ignore[arg-type]
    with pytest.raises(OperationalError) as caught:
        await repo.add(Job(id=uuid.uuid4().hex, file=FileInfo(filename="list.csv")))
    assert caught.value is last and sessions.calls == 3
