"""The durable mail outbox: use cases put mail in it, a sender delivers it off the request
path.

`enqueue(session, mail)` adds the row in the caller's unit of work (no commit): the mail
exists if and only if the change that asked for it (a sign-up, a reset) was committed.
`OutboxSender` delivers due rows (see its docstring for claims, retries and the at-least-once
guarantee).
"""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.domain.mail import OutgoingMail


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def enqueue(
    session: AsyncSession, mail: OutgoingMail, *, now: datetime.datetime | None = None
) -> str:
    """Add `mail` to the outbox in `session`'s transaction (not committed here); returns the
    row's id. Due at once (`now`, default the current time); the sender's `wake()` makes it
    go without waiting for the next poll."""
    at = now or _utc_now()
    row_id = uuid.uuid4().hex
    session.add(
        OutboxRow(
            id=row_id,
            to=mail.to,
            template=mail.template,
            context=dict(mail.context),
            created_at=at,
            attempts=0,
            next_attempt_at=at,
            claim=None,
            sent_at=None,
            last_error="",
            given_up_at=None,
        )
    )
    await session.flush()
    return row_id
