"""The credit of a single check (POST /app/check) is never lost: charged, checked, settled.

The charge (services.credits.charge_single) and a `pending_checks` row are written in one
transaction; the settlement deletes the row and, when the verdict is a refunded one or there
is no verdict (the check failed or was cancelled), refunds the credit, in one transaction.
The page settles in a `finally` shielded from cancellation and retried a few times; whatever
is still pending after that (a crash, the database down for longer) is refunded by `sweep`,
which the web role's retention task runs (services.jobs.run_retention). Deleting the row
first makes the settlement happen once, whoever gets there first.

`check_address` is the whole use case (the page only decodes the form, throttles and
renders): the account must be confirmed (`may_validate`, also the rule for starting a
list), one credit is charged (refused on a shortfall), the address checked, and the
settlement runs in a `finally` shielded from cancellation, tried SETTLE_TRIES times before
it is left to the sweeper.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Protocol

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.database import Database, rowcount
from mailvet.adapters.db.ledger_models import PendingCheckRow
from mailvet.clock import Clock
from mailvet.domain.accounts import Account
from mailvet.domain.credits import Shortfall
from mailvet.domain.verdict import Check, Verdict
from mailvet.logs import logger
from mailvet.services import credits

PENDING_FOR = timedelta(minutes=10)  # a check takes well under a minute; older: refunded
SWEEP_BATCH = 200
SETTLE_TRIES = 3  # a check's settlement, before the sweeper's turn
SETTLE_PAUSE = 0.2  # seconds, times the attempt
UNCONFIRMED = "unconfirmed"


class Checker(Protocol):
    """What checks one address (pipeline.engine.Engine)."""

    async def check(self, address: str, checks: Check) -> Verdict: ...


class CheckOutcome(msgspec.Struct, frozen=True):
    """A single check's end: the verdict (None when refused or short), whether the credit
    stayed charged, the shortfall that refused it, or why the account may not check."""

    verdict: Verdict | None
    charged: bool = False
    short: Shortfall | None = None
    refused: str | None = None


def may_validate(account: Account) -> bool:
    """Whether the account may spend on checks (a single check or a list): once confirmed."""
    return account.confirmed


async def check_address(
    database: Database,
    engine: Checker,
    account: Account,
    address: str,
    checks: Check,
    *,
    charging: bool,
    clock: Clock,
) -> CheckOutcome:
    """Check `address` for `account`: refused (UNCONFIRMED) before it is confirmed; when
    `charging`, one credit first (a shortfall refuses it), settled whatever happens to the
    check (refunded when the ledger says so or there is no verdict)."""
    if not may_validate(account):
        return CheckOutcome(None, refused=UNCONFIRMED)
    check_id = uuid.uuid4().hex
    if charging:
        async with database.unit_of_work(write=True) as session:
            short = await charge(session, account.id, check_id, now=clock())
        if short is not None:
            return CheckOutcome(None, short=short)
    reason: str | None = None  # no verdict: refunded
    refunded = False
    try:
        verdict = await engine.check(address, checks)
        reason = verdict.reason
    finally:
        if charging:
            # shielded: a cancelled request still settles (its own task finishes it)
            refunded = await asyncio.shield(settle_retried(database, check_id, reason, clock))
    charged = charging and not refunded
    logger(__name__).info(
        "single_checked", status=verdict.status, reason=verdict.reason, charged=charging
    )
    return CheckOutcome(verdict, charged=charged)


async def settle_retried(
    database: Database, check_id: str, reason: str | None, clock: Clock
) -> bool:
    """`settle` in a transaction of its own, tried SETTLE_TRIES times; when it still fails
    the check stays pending and the sweeper refunds it."""
    for attempt in range(1, SETTLE_TRIES + 1):
        try:
            async with database.unit_of_work(write=True) as session:
                return await settle(session, check_id, reason=reason, now=clock())
        except Exception as exc:
            logger(__name__).warning(
                "single_check_settle_failed", attempt=attempt, error=type(exc).__name__
            )
            if attempt < SETTLE_TRIES:
                await asyncio.sleep(SETTLE_PAUSE * attempt)
    return False


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
    if not rowcount(result):
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
