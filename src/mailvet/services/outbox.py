"""The durable mail outbox: use cases put mail in it, a sender delivers it off the request
path.

`enqueue(session, mail)` adds the row in the caller's unit of work (no commit): the mail
exists if and only if the change that asked for it (a sign-up, a reset) was committed, and a
mail server that is down fails no request. `OutboxSender` delivers due rows.

Claims. A sender claims a batch of due rows in one short transaction: it counts the attempt,
writes its claim (a random id) and moves `next_attempt_at` to the end of a lease (the
attempt's time limit, MAILVET_MAILER_TIMEOUT, plus a minute). On PostgreSQL the rows are
picked with `FOR UPDATE SKIP LOCKED`, so replicas claiming at once take different rows; on
SQLite writers are serialised (BEGIN IMMEDIATE) and the second sees the rows already leased.
The claimed mail is rendered and sent outside any transaction, each send cut off at the
time limit, and its row updated only if it still carries this claim: sent (the context,
which held the code or link, is emptied), scheduled again (`RetryPolicy`) or given up, with
the error on record (`last_error`, `given_up_at`; a row is never deleted for failing).

Guarantee: at least once. A message is never sent twice for one claim, and two senders never
hold a claim on one row at once (the lease outlives the send; the replicas' clocks must
agree within the minute of margin). A sender that dies between the server's acceptance and
the row's update (killed, or its database gone at that moment) leaves the row leased; when
the lease ends it is sent again, with the same Message-ID (the row's id), which lets a
receiving system drop the copy. Losing mail instead would be worse: a lost confirmation code
locks a person out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.database import Database, dialect_insert, rowcount
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.clock import utc_now
from mailvet.domain.mail import MailDeliveryError, Mailer, OutgoingMail, RetryPolicy
from mailvet.logs import logger
from mailvet.settings import Settings

LEASE_MARGIN = datetime.timedelta(minutes=1)
PURGE_EVERY = datetime.timedelta(hours=1)
MAX_ERROR = 2000
KEY_LENGTH = 200  # OutboxRow.key
_ADDRESS_LIKE = re.compile(r"[^\s<>\"']+@[^\s<>\"']+")


async def enqueue(
    session: AsyncSession,
    mail: OutgoingMail,
    *,
    now: datetime.datetime | None = None,
    key: str | None = None,
) -> str:
    """Add `mail` to the outbox in `session`'s transaction (not committed here); returns the
    row's id. Due at once (`now`, default the current time); the sender polls for it.

    `key`: an idempotency key (at most 200 characters, unique in the outbox): when a row
    with it exists already, nothing is added and that row's id is returned (an event
    delivered twice, such as a job's completion, mails once). The insert is an `ON CONFLICT
    DO NOTHING`, so two transactions racing with one key add one row."""
    at = now or utc_now()
    row_id = uuid.uuid4().hex
    values: dict[str, Any] = {
        "id": row_id,
        "to": mail.to,
        "template": mail.template,
        "context": dict(mail.context),
        "created_at": at,
        "attempts": 0,
        "next_attempt_at": at,
        "claim": None,
        "sent_at": None,
        "last_error": "",
        "given_up_at": None,
        "key": key,
    }
    if key is None:
        session.add(OutboxRow(**values))
        await session.flush()
        return row_id
    if not key or len(key) > KEY_LENGTH:
        raise ValueError(f"an outbox key is 1 to {KEY_LENGTH} characters")
    added = await session.execute(
        dialect_insert(session, OutboxRow)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[OutboxRow.key])
        .returning(OutboxRow.id)
    )
    if added.scalar_one_or_none() is not None:
        return row_id
    existing = await session.scalar(select(OutboxRow.id).where(OutboxRow.key == key))
    return str(existing)


async def purge_finished(session: AsyncSession, *, before: datetime.datetime) -> int:
    """Delete the rows sent or given up before `before` (the record of a delivery is personal
    data too); returns how many. Pending rows stay whatever their age."""
    result = await session.execute(
        delete(OutboxRow).where(
            or_(OutboxRow.sent_at < before, OutboxRow.given_up_at < before),
        )
    )
    return rowcount(result)


def scrub(error: str) -> str:
    """`error` with anything that looks like an address replaced (for the log; the row keeps
    the address in its own column), cut to a sane length."""
    return _ADDRESS_LIKE.sub("<address>", error)[:MAX_ERROR]


@dataclass(frozen=True)
class _Claimed:
    id: str
    claim: str
    attempts: int  # this attempt included
    template: str
    mail: OutgoingMail | None  # None: the stored row is not a valid mail (see `invalid`)
    invalid: str = ""


def _claimed(row: OutboxRow, claim: str) -> _Claimed:
    try:
        mail = OutgoingMail(to=row.to, template=row.template, context=dict(row.context))
    except (ValueError, TypeError) as exc:
        return _Claimed(row.id, claim, row.attempts, row.template, None, f"invalid: {exc}")
    return _Claimed(row.id, claim, row.attempts, row.template, mail)


class OutboxSender:
    """Delivers the outbox's due mail through `mailer` (see the module docstring).

    `run_once()` claims and delivers one batch and returns how many were sent;
    `run_forever(stop)` does so every `poll_interval` seconds until `stop` is set, and deletes
    finished rows older than MAILVET_RETENTION_DAYS every hour.
    """

    def __init__(
        self,
        database: Database,
        mailer: Mailer,
        settings: Settings,
        clock: Callable[[], datetime.datetime] = utc_now,
        *,
        policy: RetryPolicy | None = None,
        batch_size: int = 10,
        poll_interval: float = 0.5,
    ) -> None:
        self._database = database
        self._mailer = mailer
        self._settings = settings
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._attempt_timeout = settings.mailer.timeout
        self.lease = datetime.timedelta(seconds=self._attempt_timeout) + LEASE_MARGIN
        self._log = logger("mailvet.outbox")

    async def run_once(self) -> int:
        """Claim up to a batch of due rows, deliver them at once, record each outcome;
        returns the number sent."""
        sent, _claimed_count = await self._run_batch()
        return sent

    async def _run_batch(self) -> tuple[int, int]:
        batch = await self._claim()
        if not batch:
            return 0, 0
        outcomes = await asyncio.gather(*(self._deliver(item) for item in batch))
        return sum(outcomes), len(batch)

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Deliver until `stop` is set (or the task is cancelled). A failed round (database
        unreachable) is logged and tried again at the next poll."""
        next_purge = self._clock()
        while stop is None or not stop.is_set():
            claimed = 0
            try:
                _sent, claimed = await self._run_batch()
                if self._clock() >= next_purge:
                    await self._purge()
                    next_purge = self._clock() + PURGE_EVERY
            except Exception as exc:
                self._log.error("outbox.round_failed", error=scrub(f"{type(exc).__name__}: {exc}"))
            if claimed >= self._batch_size:
                continue  # a full batch: more may be due
            await self._pause(stop)

    async def _pause(self, stop: asyncio.Event | None) -> None:
        """Wait for the next poll, or less when `stop` is set meanwhile."""
        if stop is None:
            await asyncio.sleep(self._poll_interval)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self._poll_interval)

    async def _claim(self) -> list[_Claimed]:
        now = self._clock()
        # pending while next_attempt_at is set (sent and given-up rows have it NULL, which no
        # comparison matches): the index on next_attempt_at serves this alone
        due = OutboxRow.next_attempt_at <= now
        # a plain read first: an idle outbox polled twice a second takes no write lock
        async with self._database.unit_of_work() as session:
            if (await session.scalar(select(OutboxRow.id).where(due).limit(1))) is None:
                return []
        claim = uuid.uuid4().hex
        async with self._database.unit_of_work(write=True) as session:  # SQLite: BEGIN IMMEDIATE
            rows = (
                await session.scalars(
                    select(OutboxRow)
                    .where(due)
                    .order_by(OutboxRow.next_attempt_at)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)  # PostgreSQL; SQLite: serialised writers
                )
            ).all()
            for row in rows:
                row.attempts += 1
                row.claim = claim
                row.next_attempt_at = now + self.lease
            return [_claimed(row, claim) for row in rows]

    async def _deliver(self, item: _Claimed) -> int:
        if item.mail is None:
            await self._failed(item, item.invalid, temporary=False)
            return 0
        from mailvet.adapters.mail.render import render

        try:
            message = render(item.mail, self._settings, message_id=item.id, now=self._clock())
        except Exception as exc:  # a template that cannot render will not render next time
            await self._failed(item, f"render: {type(exc).__name__}: {exc}", temporary=False)
            return 0
        try:
            async with asyncio.timeout(self._attempt_timeout):
                await self._mailer.send(message)
        except MailDeliveryError as exc:
            await self._failed(item, str(exc), temporary=exc.temporary)
            return 0
        except TimeoutError:
            await self._failed(item, f"no answer in {self._attempt_timeout:g} s", temporary=True)
            return 0
        except Exception as exc:  # a mailer's unexpected error: keep the mail, try again
            await self._failed(item, f"{type(exc).__name__}: {exc}", temporary=True)
            return 0
        await self._record(
            item,
            sent_at=self._clock(),
            next_attempt_at=None,
            context={},
            last_error="",
        )
        self._log.info(
            "mail.sent", outbox_id=item.id, template=item.template, attempt=item.attempts
        )
        return 1

    async def _failed(self, item: _Claimed, error: str, *, temporary: bool) -> None:
        now = self._clock()
        retry_at = self._policy.next_attempt(attempts=item.attempts, now=now, temporary=temporary)
        fields: dict[str, Any] = {"last_error": error[:MAX_ERROR], "next_attempt_at": retry_at}
        if retry_at is None:
            fields.update(given_up_at=now, context={})
        await self._record(item, **fields)
        event = "mail.retry_scheduled" if retry_at is not None else "mail.given_up"
        self._log.warning(
            event,
            outbox_id=item.id,
            template=item.template,
            attempt=item.attempts,
            temporary=temporary,
            retry_at=retry_at.isoformat() if retry_at else None,
            error=scrub(error),
        )

    async def _record(self, item: _Claimed, **fields: Any) -> None:
        """Write the outcome if the row still carries this claim."""
        async with self._database.unit_of_work(write=True) as session:
            result = await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == item.id, OutboxRow.claim == item.claim)
                .values(claim=None, **fields)
            )
        if not rowcount(result):
            self._log.warning("outbox.claim_lost", outbox_id=item.id, template=item.template)

    async def _purge(self) -> None:
        before = self._clock() - datetime.timedelta(days=self._settings.web.retention_days)
        async with self._database.unit_of_work(write=True) as session:
            purged = await purge_finished(session, before=before)
        if purged:
            self._log.info("outbox.purged", rows=purged)
