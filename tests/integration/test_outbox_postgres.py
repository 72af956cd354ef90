"""Several senders on one outbox (web replicas): every message is sent exactly once.

On PostgreSQL claims pick rows with FOR UPDATE SKIP LOCKED; on SQLite (two engines on one
file, as two processes would have) the writers are serialised. Either way a row is claimed
by one sender at a time and its lease keeps the others off it while it is sent."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from mailvet.adapters.db.database import Database, make_database
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.adapters.db.schema import metadata
from mailvet.adapters.mail.memory import MemoryMailer
from mailvet.domain.mail import OutgoingMail
from mailvet.services.outbox import OutboxSender, enqueue
from mailvet.settings import MailerSettings, Settings
from tests.pg import scratch_database, url_of

pytestmark = pytest.mark.integration

SETTINGS = Settings(mailer=MailerSettings(backend="memory", sender="mailvet <n@mailvet.example>"))
MESSAGES = 60


@pytest.fixture(scope="module")
def postgres_name() -> Iterator[str]:
    with scratch_database("mailvet_outbox") as name:
        yield name


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/mailvet.db"
    else:
        url = url_of(request.getfixturevalue("postgres_name"))
    return url


@pytest.fixture
def pg_url(postgres_name: str) -> str:
    return url_of(postgres_name)


@contextlib.asynccontextmanager
async def two_engines(url: str) -> AsyncIterator[list[Database]]:
    """Two engines on one database, as two web processes have, on an empty outbox."""
    databases = [make_database(url), make_database(url)]
    table = metadata.tables["mail_outbox"]
    try:
        async with databases[0].engine.begin() as conn:
            await conn.run_sync(lambda sync: table.drop(sync, checkfirst=True))
            await conn.run_sync(lambda sync: table.create(sync))
        yield databases
    finally:
        for db in databases:
            await db.dispose()


@pytest.fixture
async def replicas(url: str) -> AsyncIterator[list[Database]]:
    async with two_engines(url) as databases:
        yield databases


@pytest.fixture
async def pg_replicas(pg_url: str) -> AsyncIterator[list[Database]]:
    async with two_engines(pg_url) as databases:
        yield databases


class SlowMailer(MemoryMailer):
    """Takes a moment per message, as a mail server does, so that the senders' rounds
    overlap (the latency is the point, not a wait for a condition)."""

    async def send(self, message: EmailMessage) -> None:
        await asyncio.sleep(0.002)
        await super().send(message)


async def fill(database: Database, count: int) -> list[str]:
    async with database.unit_of_work() as session:
        return [
            await enqueue(
                session,
                OutgoingMail(to=f"user{n}@example.com", template="password_changed", context={}),
            )
            for n in range(count)
        ]


async def drain(outbox: OutboxSender) -> None:
    """Run rounds until one finds nothing due twice in a row."""
    idle = 0
    while idle < 2:
        idle = idle + 1 if await outbox.run_once() == 0 else 0


async def test_concurrent_senders_send_every_message_exactly_once(
    replicas: list[Database],
) -> None:
    ids = await fill(replicas[0], MESSAGES)
    mailers = [SlowMailer(), SlowMailer()]
    senders = [
        OutboxSender(db, mailer, SETTINGS, batch_size=5)
        for db, mailer in zip(replicas, mailers, strict=True)
    ]

    async with asyncio.timeout(60):
        await asyncio.gather(*(drain(outbox) for outbox in senders for _ in range(2)))

    sent = Counter(str(m["Message-ID"]) for mailer in mailers for m in mailer.sent)
    assert sent == Counter(f"<{row_id}@mailvet.example>" for row_id in ids)  # each once
    assert all(mailer.sent for mailer in mailers)  # both replicas took part
    async with replicas[0].session_maker() as session:
        rows = (await session.scalars(select(OutboxRow))).all()
    assert all(row.sent_at is not None and row.attempts == 1 for row in rows)


async def test_postgres_claims_skip_rows_another_sender_holds(
    pg_replicas: list[Database],
) -> None:
    """Row locks are PostgreSQL's (SQLite serialises whole write transactions instead)."""
    replicas = pg_replicas
    ids = await fill(replicas[0], 10)
    mailer = MemoryMailer()
    outbox = OutboxSender(replicas[1], mailer, SETTINGS)
    now = datetime.datetime.now(datetime.UTC)

    # a claim in flight in another process: five rows locked, not committed
    async with replicas[0].unit_of_work() as holder:
        held = (
            await holder.scalars(
                select(OutboxRow.id)
                .where(OutboxRow.next_attempt_at <= now)
                .order_by(OutboxRow.next_attempt_at)
                .limit(5)
                .with_for_update()
            )
        ).all()
        async with asyncio.timeout(10):  # it must not wait for the holder
            assert await outbox.run_once() == 5
        sent = {str(m["Message-ID"]) for m in mailer.sent}
        assert sent == {f"<{i}@mailvet.example>" for i in ids if i not in held}
