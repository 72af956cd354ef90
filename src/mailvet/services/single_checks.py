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

The public API (services/api_validation.py) uses the same path, with two additions:
- `within` (seconds, the API's `timeout`): the check runs in a task of its own; when that
  passes first the answer is unknown/timeout (refunded, like every timeout) and the check
  goes on in the background, so the engine's verdict cache has its result for a later call;
- `check_addresses`: several distinct addresses charged all-or-nothing in one transaction
  (one SINGLE_CHECK entry and one pending row each, as if checked one by one), checked in
  one engine call and settled in one transaction.
Both say the balance left after the settlement (`remaining`), read in the settlement's
transaction.

A single check's charge is coalesced with the other single charges this process makes at
the same moment (`charge_coalesced`: one transaction for a round of them, services/
coalesce.py; credits.charge_singles makes them exact as if one by one). An offline check
(OFFLINE: syntax only, no network) is checked first and charged after, in that round, with
no pending row: nothing can be lost between charge and verdict, so there is nothing to
settle, and `remaining` is the balance right after its own charge. Its verdict is never a
refunded one; if it were, it would not be charged.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol, cast

import msgspec
from sqlalchemy import Insert, Select, Table, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.database import Database, rowcount
from mailvet.adapters.db.ledger_models import PendingCheckRow
from mailvet.clock import Clock
from mailvet.domain import credits as rules
from mailvet.domain.accounts import Account
from mailvet.domain.address import check_syntax
from mailvet.domain.credits import Shortfall
from mailvet.domain.offline import offline_verdict
from mailvet.domain.verdict import STATUS_OF, Check, Reason, Verdict
from mailvet.logs import logger
from mailvet.services import credits
from mailvet.services.reads import Held, PerDatabase

PENDING_FOR = timedelta(minutes=10)  # a check takes well under a minute; older: refunded
SWEEP_BATCH = 200
SETTLE_TRIES = 3  # a check's settlement, before the sweeper's turn
SETTLE_PAUSE = 0.2  # seconds, times the attempt
UNCONFIRMED = "unconfirmed"
NO_ACCOUNT = "no_account"
# checks that need no network: checked before they are charged, with nothing pending between
OFFLINE = frozenset({Check.SYNTAX})


class Checker(Protocol):
    """What checks one address (pipeline.engine.Engine)."""

    async def check(self, address: str, checks: Check) -> Verdict: ...


class BatchChecker(Checker, Protocol):
    """What checks several addresses at once, one verdict each in order (Engine)."""

    async def check_many(self, addresses: Sequence[str], checks: Check) -> list[Verdict]: ...


class CheckOutcome(msgspec.Struct, frozen=True):
    """A single check's end: the verdict (None when refused or short), whether the credit
    stayed charged, the shortfall that refused it, or why the account may not check;
    `remaining`: the balance after the settlement (None when nothing was charged)."""

    verdict: Verdict | None
    charged: bool = False
    short: Shortfall | None = None
    refused: str | None = None
    remaining: int | None = None


class BatchOutcome(msgspec.Struct, frozen=True):
    """Several checks' end: one verdict per address given, in order (empty when refused or
    short), how many credits stayed charged, and the rest as in CheckOutcome."""

    verdicts: list[Verdict]
    charged: int = 0
    short: Shortfall | None = None
    refused: str | None = None
    remaining: int | None = None


# checks still running after their caller's timeout passed (finishing for the engine's
# cache): referenced here so that they are not collected mid-way; each removes itself
_BACKGROUND: set[asyncio.Task[Verdict]] = set()


def timed_out(address: str) -> Verdict:
    """The answer to a check whose timeout passed first: unknown/timeout, with what is known
    without the network (normalized form, lists)."""
    cell = address.strip()
    base = offline_verdict(check_syntax(cell), cell)
    reason = Reason.TIMEOUT
    return msgspec.structs.replace(base, status=STATUS_OF[reason], reason=reason)


def _finished(task: asyncio.Task[Verdict]) -> None:
    _BACKGROUND.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger(__name__).warning("background_check_failed", error=type(task.exception()).__name__)


async def _check_within(
    engine: Checker, address: str, checks: Check, within: float | None
) -> Verdict:
    """`engine.check`, or unknown/timeout when `within` seconds pass first (the check goes
    on in the background: its verdict lands in the engine's cache)."""
    if within is None:
        return await engine.check(address, checks)
    task = asyncio.ensure_future(engine.check(address, checks))
    _BACKGROUND.add(task)
    task.add_done_callback(_finished)
    try:
        return await asyncio.wait_for(asyncio.shield(task), within)
    except TimeoutError:
        logger(__name__).info("single_check_timed_out", within=within)
        return timed_out(address)


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
    within: float | None = None,
) -> CheckOutcome:
    """Check `address` for `account`: refused (UNCONFIRMED) before it is confirmed; when
    `charging`, one credit first (a shortfall refuses it), settled whatever happens to the
    check (refunded when the ledger says so or there is no verdict). With `within`
    (seconds), unknown/timeout when it passes before the verdict (see `_check_within`)."""
    if not may_validate(account):
        return CheckOutcome(None, refused=UNCONFIRMED)
    if checks in OFFLINE:
        return await _check_offline(database, engine, account, address, checks, charging, clock)
    check_id = uuid.uuid4().hex
    if charging:
        got = await charge_coalesced(database, account.id, check_id, now=clock(), pending=True)
        if isinstance(got, Shortfall):
            return CheckOutcome(None, short=got)
    reason: str | None = None  # no verdict: refunded
    settled = Settled(refunded=0)
    try:
        verdict = await _check_within(engine, address, checks, within)
        reason = verdict.reason
    finally:
        if charging:
            # shielded: a cancelled request still settles (its own task finishes it)
            settled = await asyncio.shield(
                settle_retried_many(database, account.id, [(check_id, reason)], clock)
            )
    charged = charging and not settled.refunded
    logger(__name__).info(
        "single_checked", status=verdict.status, reason=verdict.reason, charged=charging
    )
    return CheckOutcome(verdict, charged=charged, remaining=settled.remaining)


async def _check_offline(
    database: Database,
    engine: Checker,
    account: Account,
    address: str,
    checks: Check,
    charging: bool,
    clock: Clock,
) -> CheckOutcome:
    """An offline check (OFFLINE): the verdict first, then its credit (coalesced with the
    process's other charges: `_charges`), so there is nothing pending to settle. A verdict
    the ledger refunds is not charged at all; a check that raises charges nothing."""
    verdict = await engine.check(address, checks)
    if not charging or rules.is_refunded(verdict.reason):
        return CheckOutcome(verdict)
    got = await charge_coalesced(database, account.id, uuid.uuid4().hex, now=clock())
    if isinstance(got, Shortfall):
        return CheckOutcome(None, short=got)
    logger(__name__).debug("single_checked", status=verdict.status, reason=verdict.reason)
    return CheckOutcome(verdict, charged=True, remaining=got)


async def charge_coalesced(
    database: Database, account_id: str, check_id: str, *, now: datetime, pending: bool = False
) -> int | Shortfall:
    """One credit for the check `check_id` (fresh), and its pending row when `pending`: the
    balance left after it, or the shortfall. Charged in a round with the other charges this
    process makes meanwhile, in one transaction (group commit: `_charge_round`); when that
    transaction fails every charge of the round raises its error and none is made."""
    got = await _CHARGES.of(database).submit(
        _Charge(credits.SingleCharge(account_id, check_id, now), pending=pending)
    )
    if isinstance(got, str):  # never: this charge asked for no confirmation
        raise RuntimeError(got)
    return got


async def check_offline(
    database: Database,
    engine: Checker,
    account_id: str,
    address: str,
    checks: Check,
    *,
    clock: Clock,
) -> CheckOutcome:
    """An offline check (OFFLINE) charged to the account `account_id` as `check_address`
    charges it, with the account itself read in the charge's round and transaction (one
    round a request instead of two): refused NO_ACCOUNT when there is no such account,
    UNCONFIRMED before it is confirmed (nothing charged either way)."""
    if checks not in OFFLINE:
        raise ValueError(f"{checks} checks need the network")
    verdict = await engine.check(address, checks)
    free = rules.is_refunded(verdict.reason)  # never for syntax: then only the account read
    got = await _CHARGES.of(database).submit(
        _Charge(
            credits.SingleCharge(account_id, uuid.uuid4().hex, clock()),
            pending=False,
            confirm=True,
            free=free,
        )
    )
    if isinstance(got, str):
        return CheckOutcome(None, refused=got)
    if isinstance(got, Shortfall):
        return CheckOutcome(None, short=got)
    if free:
        return CheckOutcome(verdict)
    logger(__name__).debug("single_checked", status=verdict.status, reason=verdict.reason)
    return CheckOutcome(verdict, charged=True, remaining=got)


# what a round answers a charge: the balance after it, its shortfall, or why the account
# may not check (UNCONFIRMED, NO_ACCOUNT: only for a charge that asked to `confirm`)
_Answer = int | Shortfall | str


class _Charge(msgspec.Struct, frozen=True):
    """A single check's credit, recorded as pending (settled after the check) or not;
    `confirm`: refused unless its account exists and is confirmed (read in the round's
    transaction); `free`: that read alone, nothing charged (the answer is then 0)."""

    charge: credits.SingleCharge
    pending: bool
    confirm: bool = False
    free: bool = False


async def _charge_round(held: Held, charges: Sequence[_Charge]) -> list[_Answer]:
    """One round of the process's single-check charges in one transaction: the accounts to
    confirm (one read), the credits (credits.charge_singles) and the pending rows of those
    charged that want one."""
    async with held.session() as session:
        refused: dict[str, str] = {}
        wanted = sorted({item.charge.account_id for item in charges if item.confirm})
        if wanted:
            rows = (await session.execute(_confirmations(), {"ids": wanted})).all()
            confirmed = {account_id: when is not None for account_id, when in rows}
            refused = {
                account_id: UNCONFIRMED if account_id in confirmed else NO_ACCOUNT
                for account_id in wanted
                if not confirmed.get(account_id)
            }
        answers: list[_Answer | None] = [None] * len(charges)
        paying: list[int] = []
        for index, item in enumerate(charges):
            if item.confirm and item.charge.account_id in refused:
                answers[index] = refused[item.charge.account_id]
            elif item.free:
                answers[index] = 0
            else:
                paying.append(index)
        got = await credits.charge_singles(session, [charges[index].charge for index in paying])
        for index, answer in zip(paying, got, strict=True):
            answers[index] = answer
        pending = [
            {
                "check_id": charges[index].charge.check_id,
                "account_id": charges[index].charge.account_id,
                "created_at": charges[index].charge.now,
            }
            for index, answer in zip(paying, got, strict=True)
            if charges[index].pending and not isinstance(answer, Shortfall)
        ]
        if pending:
            await session.execute(_add_pending(), pending)
    return [answer if answer is not None else 0 for answer in answers]


@functools.cache
def _confirmations() -> Select[str, datetime | None]:
    accounts = cast(Table, AccountRow.__table__)
    return select(accounts.c.id, accounts.c.confirmed_at).where(
        accounts.c.id.in_(bindparam("ids", expanding=True))
    )


@functools.cache
def _add_pending() -> Insert:
    return insert(cast(Table, PendingCheckRow.__table__))


# each database's coalesced charges (services/coalesce.py): one per database and process
_CHARGES = PerDatabase(_charge_round, read=False)


async def check_addresses(
    database: Database,
    engine: BatchChecker,
    account: Account,
    addresses: Sequence[str],
    checks: Check,
    *,
    charging: bool,
    clock: Clock,
) -> BatchOutcome:
    """Check several distinct addresses for `account` (the caller merges duplicates): one
    credit each, all charged in one transaction or none (a shortfall of the whole count
    refuses them all), checked in one engine call, settled in one transaction (each
    refunded when the ledger says so; all when there is no verdict)."""
    if not may_validate(account):
        return BatchOutcome([], refused=UNCONFIRMED)
    if not addresses:
        return BatchOutcome([])
    check_ids = [uuid.uuid4().hex for _ in addresses]
    if charging:
        short = await charge_many(database, account.id, check_ids, now=clock())
        if short is not None:
            return BatchOutcome([], short=short)
    reasons: list[str | None] = [None] * len(addresses)  # no verdicts: all refunded
    settled = Settled(refunded=0)
    try:
        verdicts = await engine.check_many(addresses, checks)
        reasons = [verdict.reason for verdict in verdicts]
    finally:
        if charging:
            pairs = list(zip(check_ids, reasons, strict=True))
            settled = await asyncio.shield(settle_retried_many(database, account.id, pairs, clock))
    charged = len(addresses) - settled.refunded if charging else 0
    logger(__name__).info("batch_checked", addresses=len(addresses), charged=charged)
    return BatchOutcome(verdicts, charged=charged, remaining=settled.remaining)


class Settled(msgspec.Struct, frozen=True):
    """A settlement: how many checks it refunded, and the balance after it (None when it
    failed and the sweeper will settle)."""

    refunded: int
    remaining: int | None = None


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


async def settle_retried_many(
    database: Database,
    account_id: str,
    checks: Sequence[tuple[str, str | None]],
    clock: Clock,
) -> Settled:
    """`settle` of every (check id, reason) in one transaction of its own, with the
    account's balance after it, tried SETTLE_TRIES times; when it still fails the checks
    stay pending and the sweeper refunds them (remaining None)."""
    for attempt in range(1, SETTLE_TRIES + 1):
        try:
            async with database.unit_of_work(write=True) as session:
                refunded = await settle_many(session, checks, now=clock())
                left = await credits.balance(session, account_id)
                return Settled(refunded=refunded, remaining=left.balance)
        except Exception as exc:
            logger(__name__).warning(
                "single_check_settle_failed", attempt=attempt, error=type(exc).__name__
            )
            if attempt < SETTLE_TRIES:
                await asyncio.sleep(SETTLE_PAUSE * attempt)
    return Settled(refunded=0)


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


class _Short(Exception):
    """Raised inside charge_many's transaction to roll it back on a shortfall."""

    def __init__(self, short: Shortfall) -> None:
        super().__init__("short")
        self.short = short


async def charge_many(
    database: Database, account_id: str, check_ids: Sequence[str], *, now: datetime
) -> Shortfall | None:
    """One credit for each check of `check_ids` (fresh ids), all recorded as pending in one
    transaction of its own, or none: the shortfall when the balance is below their count
    (the transaction rolled back: nothing recorded). The first charge locks the account's
    balance row until the commit, so no other spend comes between; a look at the balance
    before (no lock) refuses the plain shortfall without writing anything."""
    needed = len(check_ids)
    async with database.session_maker() as session:
        seen = (await credits.balance(session, account_id)).balance
    if short := rules.spend(seen, needed):
        return short
    try:
        async with database.unit_of_work(write=True) as session:
            for done, check_id in enumerate(check_ids):
                short = await credits.charge_single(session, account_id, check_id, now=now)
                if short is not None:  # another spend came first: the balance was done + left
                    raise _Short(Shortfall(needed=needed, available=done + short.available))
            session.add_all(
                PendingCheckRow(check_id=check_id, account_id=account_id, created_at=now)
                for check_id in check_ids
            )
            await session.flush()
    except _Short as refused:
        return refused.short
    return None


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


async def settle_many(
    session: AsyncSession, checks: Sequence[tuple[str, str | None]], *, now: datetime
) -> int:
    """`settle` of every (check id, reason), their pending rows deleted in one statement;
    how many were refunded now (those settled before are left alone)."""
    reasons = dict(checks)
    ids = list(reasons)
    gone: list[str] = []
    for start in range(0, len(ids), SWEEP_BATCH):  # bounded IN lists
        part = ids[start : start + SWEEP_BATCH]
        result = await session.execute(
            delete(PendingCheckRow)
            .where(PendingCheckRow.check_id.in_(part))
            .returning(PendingCheckRow.check_id)
            .execution_options(synchronize_session=False)
        )
        gone += result.scalars().all()
    refunded = 0
    for check_id in gone:
        reason = reasons[check_id]
        if reason is None:
            refunded += await credits.refund_single(session, check_id, now=now)
        else:
            refunded += await credits.settle_single(session, check_id, reason=reason, now=now)
    return refunded


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
