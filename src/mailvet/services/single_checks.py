"""The credit of a single check (POST /app/check) is never lost: charged, checked, settled.

The charge (services.credits.charge_single) and a `pending_checks` row are written in one
transaction; the settlement deletes the row and, when the verdict is a refunded one or there
is no verdict (the check failed or was cancelled), refunds the credit, in one transaction.
The page settles in a `finally` shielded from cancellation and retried a few times; whatever
is still pending after that (a crash, the database down for longer) is refunded by `sweep`,
which the web role's retention task runs (services.jobs.run_retention). Deleting the row
first makes the settlement happen once, whoever gets there first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.ledger_models import PendingCheckRow
from mailvet.domain.credits import Shortfall
from mailvet.services import credits

PENDING_FOR = timedelta(minutes=10)  # a check takes well under a minute; older: refunded
SWEEP_BATCH = 200


async def charge(
    session: AsyncSession, account_id: str, check_id: str, *, now: datetime
) -> Shortfall | None:
    """One credit for the check `check_id` (fresh per check), recorded as pending; the
    shortfall when the balance is empty (nothing recorded)."""
    short = await credits.charge_single(session, account_id, check_id, now=now)
    if short is None:
        session.add(PendingCheckRow(check_id=check_id, account_id=account_id, created_at=now))
        await session.flush()
    return short


async def settle(
    session: AsyncSession, check_id: str, *, reason: str | None, now: datetime
) -> bool:
    """Settle a pending check: `reason` is its verdict's (refunded when the ledger's rules
    say so), None when there is no verdict (refunded). True if refunded now; False also
    when it was settled before."""
    result = await session.execute(
        delete(PendingCheckRow)
        .where(PendingCheckRow.check_id == check_id)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        return False
    if reason is None:
        return await credits.refund_single(session, check_id, now=now)
    return await credits.settle_single(session, check_id, reason=reason, now=now)


async def pending(session: AsyncSession, account_id: str) -> list[str]:
    """The account's checks charged and not settled (oldest first)."""
    rows = await session.scalars(
        select(PendingCheckRow.check_id)
        .where(PendingCheckRow.account_id == account_id)
        .order_by(PendingCheckRow.created_at)
    )
    return list(rows)


async def sweep(
    session: AsyncSession,
    *,
    now: datetime,
    older_than: timedelta = PENDING_FOR,
    batch: int = SWEEP_BATCH,
) -> int:
    """Refund the checks pending since before `now - older_than` (at most `batch`); how
    many were refunded."""
    ids = list(
        await session.scalars(
            select(PendingCheckRow.check_id)
            .where(PendingCheckRow.created_at < now - older_than)
            .order_by(PendingCheckRow.created_at)
            .limit(batch)
        )
    )
    refunded = 0
    for check_id in ids:
        refunded += await settle(session, check_id, reason=None, now=now)
    return refunded
