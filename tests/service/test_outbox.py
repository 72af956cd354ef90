"""The mail outbox on the embedded database with the memory mailer: enqueue in the caller's
transaction, delivery, retries, giving up on record, the at-least-once crash window."""

from __future__ import annotations

import asyncio
import datetime
from email.message import EmailMessage

import pytest
import structlog
from sqlalchemy import select, update

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.adapters.mail.log import plain_text
from mailvet.adapters.mail.memory import MemoryMailer
from mailvet.domain.mail import OutgoingMail
from mailvet.services.outbox import OutboxSender, enqueue, purge_finished
from mailvet.settings import MailerSettings, Settings, WebSettings
from tests import outbox_helpers
from tests.fakes import T0, MovingClock
from tests.outbox_helpers import put, row
from tests.waiting import until

pytestmark = pytest.mark.pipeline

SETTINGS = Settings(
    web=WebSettings(public_url="https://mailvet.example"),
    mailer=MailerSettings(backend="memory", sender="mailvet <no-reply@mailvet.example>"),
)
CODE = OutgoingMail(to="ann@example.com", template="confirm_code", context={"code": "481516"})


database = outbox_helpers.database


@pytest.fixture
def clock() -> MovingClock:
    return MovingClock(T0)


def sender(
    database: Database, mailer: MemoryMailer, clock: MovingClock, **options: object
) -> OutboxSender:
    return OutboxSender(database, mailer, SETTINGS, clock, **options)  # type: ignore[arg-type]


async def test_mail_enqueued_in_a_transaction_exists_only_if_it_commits(
    database: Database, clock: MovingClock
) -> None:
    class Abandon(Exception):
        pass

    with pytest.raises(Abandon):
        async with database.unit_of_work() as session:
            await enqueue(session, CODE, now=clock())
            raise Abandon  # the sign-up failed: its mail must not go either
    async with database.session_maker() as session:
        assert (await session.scalars(select(OutboxRow))).all() == []

    row_id = await put(database, CODE, clock)

    stored = await row(database, row_id)
    assert (stored.to, stored.template, stored.context) == (
        "ann@example.com",
        "confirm_code",
        {"code": "481516"},
    )
    assert (stored.attempts, stored.next_attempt_at, stored.sent_at) == (0, T0, None)


async def test_a_due_message_is_sent_once_and_recorded(
    database: Database, clock: MovingClock
) -> None:
    mailer = MemoryMailer()
    row_id = await put(database, CODE, clock)
    clock.advance(seconds=1)

    assert await sender(database, mailer, clock).run_once() == 1
    assert await sender(database, mailer, clock).run_once() == 0

    [message] = mailer.sent
    assert message["To"] == "ann@example.com"
    assert message["Message-ID"] == f"<{row_id}@mailvet.example>"
    assert "481516" in plain_text(message)
    stored = await row(database, row_id)
    assert stored.sent_at == T0 + datetime.timedelta(seconds=1)
    assert (stored.attempts, stored.next_attempt_at, stored.claim) == (1, None, None)
    assert stored.context == {}  # the code is not kept once delivered


async def test_a_temporary_failure_is_tried_again_after_the_delay(
    database: Database, clock: MovingClock
) -> None:
    mailer = MemoryMailer(fail_times=2)
    row_id = await put(database, CODE, clock)
    outbox = sender(database, mailer, clock)

    assert await outbox.run_once() == 0
    stored = await row(database, row_id)
    assert stored.next_attempt_at == T0 + datetime.timedelta(seconds=30)
    assert "told to fail" in stored.last_error
    assert (stored.attempts, stored.sent_at, stored.given_up_at) == (1, None, None)

    clock.advance(seconds=29)
    assert await outbox.run_once() == 0
    assert mailer.attempts == 1  # not due yet

    clock.advance(seconds=1)
    assert await outbox.run_once() == 0  # second failure: 60 s now
    assert (await row(database, row_id)).next_attempt_at == clock() + datetime.timedelta(seconds=60)
    clock.advance(seconds=60)
    assert await outbox.run_once() == 1
    assert len(mailer.sent) == 1
    stored = await row(database, row_id)
    assert (stored.attempts, stored.last_error, stored.given_up_at) == (3, "", None)


async def test_an_smtp_outage_of_days_loses_no_mail(database: Database, clock: MovingClock) -> None:
    """Issue 8 §4: a relay down from Friday night to Monday delays the mail, hourly retries
    at most, and delivers it (with its code) once it answers again."""
    mailer = MemoryMailer(fail_times=10_000)
    row_id = await put(database, CODE, clock)
    outbox = sender(database, mailer, clock)

    with structlog.testing.capture_logs() as logs:
        while clock() - T0 < datetime.timedelta(days=3):
            stored = await row(database, row_id)
            assert stored.given_up_at is None
            assert stored.next_attempt_at is not None
            assert stored.next_attempt_at - clock() <= datetime.timedelta(hours=1)
            clock.now = stored.next_attempt_at
            assert await outbox.run_once() == 0
    assert {entry["event"] for entry in logs} == {"mail.retry_scheduled"}
    failed = mailer.attempts

    mailer.fail(0)  # the relay is back
    clock.now = (await row(database, row_id)).next_attempt_at or clock()
    assert await outbox.run_once() == 1
    [message] = mailer.sent
    assert "481516" in plain_text(message)
    stored = await row(database, row_id)
    assert (stored.attempts, stored.given_up_at) == (failed + 1, None)
    assert stored.sent_at is not None


async def test_a_permanent_failure_is_given_up_at_once(
    database: Database, clock: MovingClock
) -> None:
    mailer = MemoryMailer(fail_times=1, temporary=False)
    row_id = await put(database, CODE, clock)

    assert await sender(database, mailer, clock).run_once() == 0
    clock.advance(days=1)
    assert await sender(database, mailer, clock).run_once() == 0

    stored = await row(database, row_id)
    assert (stored.attempts, stored.given_up_at, stored.context) == (1, T0, {})
    assert mailer.attempts == 1


class Killed(BaseException):
    """The process dies (SIGKILL, power cut): nothing after this line runs."""


class DiesAfterSending(MemoryMailer):
    async def send(self, message: EmailMessage) -> None:
        await super().send(message)
        raise Killed


async def test_a_crash_between_send_and_mark_sends_again_after_the_lease(
    database: Database, clock: MovingClock
) -> None:
    """At least once, by design: the server had the message, the row was not marked; after
    the lease the message goes again, with the same Message-ID so the copy can be dropped."""
    dying = DiesAfterSending()
    row_id = await put(database, CODE, clock)
    with pytest.raises(Killed):
        await sender(database, dying, clock).run_once()
    assert len(dying.sent) == 1

    # another sender (a replica, or the restarted process) leaves it alone during the lease
    mailer = MemoryMailer()
    outbox = sender(database, mailer, clock)
    lease = outbox.lease
    assert lease == datetime.timedelta(seconds=SETTINGS.mailer.timeout + 60)
    clock.advance(seconds=lease.total_seconds() - 1)
    assert await outbox.run_once() == 0

    clock.advance(seconds=1)
    assert await outbox.run_once() == 1
    [again] = mailer.sent
    assert again["Message-ID"] == dying.sent[0]["Message-ID"] == f"<{row_id}@mailvet.example>"
    assert (await row(database, row_id)).attempts == 2


async def test_a_stored_row_that_is_not_a_valid_mail_is_given_up_unsent(
    database: Database, clock: MovingClock
) -> None:
    row_id = await put(database, CODE, clock)
    async with database.unit_of_work() as session:
        hostile = {"to": "ann@example.com\r\nBcc: eve@evil.example"}
        await session.execute(update(OutboxRow).where(OutboxRow.id == row_id).values(**hostile))
    mailer = MemoryMailer()

    assert await sender(database, mailer, clock).run_once() == 0

    assert mailer.attempts == 0
    stored = await row(database, row_id)
    assert stored.given_up_at == T0
    assert "invalid" in stored.last_error


class Hangs(MemoryMailer):
    async def send(self, message: EmailMessage) -> None:
        self.attempts += 1
        await asyncio.Event().wait()


async def test_a_send_that_hangs_is_cut_off_and_kept(
    database: Database, clock: MovingClock
) -> None:
    quick = Settings(mailer=MailerSettings(backend="memory", timeout=0.05))
    row_id = await put(database, CODE, clock)

    assert await OutboxSender(database, Hangs(), quick, clock).run_once() == 0

    stored = await row(database, row_id)
    assert "no answer in 0.05 s" in stored.last_error
    assert stored.next_attempt_at == T0 + datetime.timedelta(seconds=30)


async def test_a_batch_goes_at_once_and_every_message_once(
    database: Database, clock: MovingClock
) -> None:
    mailer = MemoryMailer()
    ids = [
        await put(
            database,
            OutgoingMail(to=f"user{n}@example.com", template="password_changed", context={}),
            clock,
        )
        for n in range(25)
    ]
    outbox = sender(database, mailer, clock, batch_size=10)

    assert [await outbox.run_once() for _ in range(4)] == [10, 10, 5, 0]
    assert sorted(str(m["Message-ID"]) for m in mailer.sent) == sorted(
        f"<{row_id}@mailvet.example>" for row_id in ids
    )


async def test_run_forever_sends_on_its_poll_and_stops(
    database: Database, clock: MovingClock
) -> None:
    mailer = MemoryMailer()
    # an hour between polls: set, the stop ends the pause at once
    outbox = sender(database, mailer, clock, poll_interval=3600)
    await put(database, CODE, clock)
    stop = asyncio.Event()
    task = asyncio.create_task(outbox.run_forever(stop))
    try:
        await until(lambda: len(mailer.sent) == 1)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert task.done() and task.exception() is None

    # a short poll picks up mail enqueued while it runs
    outbox = sender(database, mailer, clock, poll_interval=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(outbox.run_forever(stop))
    try:
        await put(database, CODE, clock)
        await until(lambda: len(mailer.sent) == 2)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert task.done() and task.exception() is None


@pytest.mark.usefixtures("every_level")
async def test_the_log_holds_no_address_or_code(database: Database, clock: MovingClock) -> None:
    mailer = MemoryMailer(fail_times=1)
    await put(database, CODE, clock)
    outbox = sender(database, mailer, clock)

    with structlog.testing.capture_logs() as logs:
        await outbox.run_once()
        clock.advance(minutes=1)
        await outbox.run_once()

    assert [entry["event"] for entry in logs] == ["mail.retry_scheduled", "mail.sent"]
    assert [entry["log_level"] for entry in logs] == ["warning", "info"]
    for entry in logs:
        text = repr(entry)
        assert "ann@example.com" not in text and "481516" not in text


async def test_finished_rows_are_purged_and_pending_ones_kept(
    database: Database, clock: MovingClock
) -> None:
    mailer = MemoryMailer()
    sent_id = await put(database, CODE, clock)
    await sender(database, mailer, clock).run_once()
    clock.advance(days=40)
    pending_id = await put(database, CODE, clock)

    async with database.unit_of_work() as session:
        purged = await purge_finished(session, before=clock() - datetime.timedelta(days=30))

    assert purged == 1
    async with database.session_maker() as session:
        assert await session.get(OutboxRow, sent_id) is None
        assert await session.get(OutboxRow, pending_id) is not None


async def test_a_keyed_mail_is_queued_once(database: Database, clock: MovingClock) -> None:
    done = OutgoingMail(to="ann@example.com", template="job_completed", context={"job_id": "j1"})
    async with database.unit_of_work() as session:
        first = await enqueue(session, done, now=clock(), key="job_completed:j1")
        again = await enqueue(session, done, now=clock(), key="job_completed:j1")
    async with database.unit_of_work() as session:
        later = await enqueue(session, done, now=clock(), key="job_completed:j1")
        other = await enqueue(session, done, now=clock(), key="job_completed:j2")
        plain = [await enqueue(session, done, now=clock()) for _ in range(2)]  # no key
    assert first == again == later != other
    async with database.session_maker() as session:
        rows = (await session.scalars(select(OutboxRow))).all()
    assert sorted(row.id for row in rows) == sorted([first, other, *plain])
    with pytest.raises(ValueError, match="key"):
        async with database.unit_of_work() as session:
            await enqueue(session, done, key="k" * 201)
