"""Credits running low (issue 10 §1): one mail when an account's balance falls under a tenth
of its last top-up (a pack bought or a paid period's grant; domain.credits.TOPUP_KINDS), once
per top-up.

The ledger keeps, on each account's balance row, the last top-up's amount and entry number
(`last_topup`, `last_topup_seq`, set by services/credits.py as it appends the entry) and the
entry number of the top-up last warned about (`low_warned_seq`). `queue_warnings` finds the
rows whose balance is under the line and whose top-up was not warned about, queues the
LOW_CREDITS mail (services/billing_mail.py, key `low-credits:<account>:<top-up seq>`) and
marks the top-up warned, in the caller's transaction. The balance climbing back over the
line (a job's settlement, an admin's adjustment) and falling again warns no more; the next
top-up starts again. Sign-up grants, refunds and adjustments are no top-up.

The web role runs `sweep` every minute (services.jobs.run_retention): a warning comes within
a minute of the spend that caused it, and no spend path pays for it. Replicas may sweep at
once: the mark is a guarded UPDATE (only one of them moves it) and the mail's key is unique.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.database import Database, rowcount
from mailvet.adapters.db.ledger_models import CreditBalanceRow
from mailvet.domain.billing import LOW_CREDITS_SHARE, MailKind
from mailvet.services.billing_mail import queue_billing_mail

BATCH = 200


def warning_key(account_id: str, topup_seq: int) -> str:
    return f"low-credits:{account_id}:{topup_seq}"


async def queue_warnings(session: AsyncSession, *, now: datetime, limit: int = BATCH) -> int:
    """Queue the low-credits mail of up to `limit` accounts due one (see the module
    docstring) in `session`'s transaction; how many were queued."""
    queued, _seen = await _warn(session, now=now, limit=limit)
    return queued


async def sweep(database: Database, *, now: datetime, limit: int = BATCH) -> int:
    """`queue_warnings` in write transactions of its own, batch after batch while a batch
    was full; how many mails were queued in all."""
    queued_all = 0
    while True:
        async with database.unit_of_work(write=True) as session:
            queued, seen = await _warn(session, now=now, limit=limit)
        queued_all += queued
        if seen < limit:
            return queued_all


async def _warn(session: AsyncSession, *, now: datetime, limit: int) -> tuple[int, int]:
    """(mails queued, balance rows marked): a row whose account is gone is marked too, so
    that it is not looked at again."""
    row = CreditBalanceRow
    due = (
        await session.execute(
            select(row.account_id, row.balance, row.last_topup, row.last_topup_seq)
            .where(
                row.last_topup > 0,
                row.balance * LOW_CREDITS_SHARE < row.last_topup,
                row.low_warned_seq < row.last_topup_seq,
            )
            .order_by(row.account_id)
            .limit(limit)
        )
    ).all()
    queued = 0
    for account_id, balance, last_topup, topup_seq in due:
        marked = await session.execute(
            update(row)
            .where(row.account_id == account_id, row.low_warned_seq < topup_seq)
            .values(low_warned_seq=topup_seq)
            .execution_options(synchronize_session=False)
        )
        if not rowcount(marked):
            continue  # another replica's sweep took it
        data = {"balance": str(max(balance, 0)), "last_topup": str(last_topup)}
        key = warning_key(account_id, topup_seq)
        if await queue_billing_mail(session, account_id, MailKind.LOW_CREDITS, key, data, now=now):
            queued += 1
    return queued, len(due)
