"""Credits: the use cases of the ledger on the database (rules in domain/credits.py).

Every function takes the caller's unit of work (`session`, an AsyncSession inside a
transaction: `Database.unit_of_work`) and does not commit: sign-up adds the account, its
grant and its mail in one transaction. The writers (everything but `balance` and `history`)
first lock the account's `credit_balances` row (made on the account's first entry):
PostgreSQL `SELECT ... FOR UPDATE`, so concurrent spends of one account run one after the
other and each sees what the one before committed; SQLite serialises writers: a transaction
whose first statement is the lock's INSERT takes the write lock there; one that read before
must begin as a writer (`unit_of_work(write=True)`, or `database.write_intent(session)`
first thing: BEGIN IMMEDIATE). Then the idempotency key is looked up, the domain decides,
and one entry is appended with the cached balance (the row's `balance`, what `balance`
answers) moved by its amount.

`SqlCreditLedger` is the pipeline's CreditLedger on these functions (one transaction per
call). `sweep_unsettled_jobs` settles the jobs that ended without their settlement (a
failure right after a job completed or failed): completed ones are charged what their
counts say, failed ones nothing, so no job stays charged for a failure nor holds its
reservation forever.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import msgspec
from sqlalchemy import (
    ColumnElement,
    Insert,
    Integer,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from mailvet.adapters.db.database import Database, dialect_insert, rowcount
from mailvet.adapters.db.ledger_models import CreditBalanceRow, LedgerEntryRow
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.rows import decode_counts
from mailvet.clock import Clock, utc_now
from mailvet.domain import credits as rules
from mailvet.domain.credits import Balance, Entry, EntryKind, Reservation, Shortfall
from mailvet.domain.job import Job, JobStatus
from mailvet.logs import logger
from mailvet.services.paging import Page

REASON_MAX = 1024


class Repeated(msgspec.Struct, frozen=True):
    """A keyed step whose key was used before: nothing changed this time."""

    key: str


# --- reading -------------------------------------------------------------------------------


async def balance(session: AsyncSession, account_id: str) -> Balance:
    """The spendable balance and what running jobs hold of it. The balance is the one every
    spend is decided on: the account's balance row, which each entry moves by its amount
    (0 before the first entry), so reading it costs no sum over the entries."""
    query = select(CreditBalanceRow.balance).where(CreditBalanceRow.account_id == account_id)
    cached = (await session.execute(query)).scalar_one_or_none()
    return Balance(cached or 0, await _reserved(session, account_id))


async def history(
    session: AsyncSession, account_id: str, *, limit: int = 50, offset: int = 0
) -> Page[Entry]:
    """One page of the account's entries, newest first (in the order they were made: `seq`)."""
    if limit < 1 or offset < 0:
        raise ValueError("limit >= 1 and offset >= 0")
    count = select(func.count()).where(LedgerEntryRow.account_id == account_id)
    total = (await session.execute(count)).scalar_one()
    query = (
        select(LedgerEntryRow)
        .where(LedgerEntryRow.account_id == account_id)
        .order_by(LedgerEntryRow.seq.desc())
        .limit(limit)
        .offset(offset)
    )
    rows = (await session.execute(query)).scalars()
    return Page([_entry(row) for row in rows], total, offset, limit)


# --- writing -------------------------------------------------------------------------------


async def grant(
    session: AsyncSession,
    account_id: str,
    amount: int,
    *,
    kind: EntryKind,
    now: datetime,
    reason: str = "",
    actor: str = "",
    key: str | None = None,
) -> bool:
    """Add `amount` credits (sign-up grant, purchase, refund). With `key` (an idempotency
    key: a payment id, "signup:<account>") a repeated call changes nothing: False."""
    rules.check_grant(kind, amount)
    await lock_balance(session, account_id, now)
    if key is not None and await _by_key(session, key) is not None:
        return False
    await _append(session, account_id, kind, amount, now, key=key, reason=reason, actor=actor)
    return True


async def take_back(
    session: AsyncSession,
    account_id: str,
    amount: int,
    *,
    key: str,
    reason: str,
    now: datetime,
) -> bool:
    """Take `amount` credits back after a payment's refund (billing decides how many: never
    more than the balance, so it cannot go below 0), under the idempotency key `key`: a
    repeated call changes nothing (False). An amount of 0 is written too: the entry records
    the refund whose credits jobs had already used."""
    rules.check_take_back(amount, reason)
    available = await lock_balance(session, account_id, now)
    if await _by_key(session, key) is not None:
        return False
    if amount > available:
        raise ValueError("a take-back is never more than the balance")
    await _append(
        session, account_id, EntryKind.PAYMENT_REFUND, -amount, now, key=key, reason=reason
    )
    return True


async def adjust(
    session: AsyncSession,
    account_id: str,
    amount: int,
    *,
    actor: str,
    reason: str,
    now: datetime,
) -> Shortfall | None:
    """An administrator adds (amount > 0) or removes credits, saying who and why; removing
    more than the balance is refused with the shortfall."""
    got = await _adjust(session, account_id, amount, actor=actor, reason=reason, now=now)
    return got if isinstance(got, Shortfall) else None


async def adjust_once(
    session: AsyncSession,
    account_id: str,
    amount: int,
    *,
    key: str,
    actor: str,
    reason: str,
    now: datetime,
) -> Shortfall | Repeated | None:
    """`adjust` keyed by an idempotency key (the admin page's one-time form nonce): the
    same key again changes nothing and says so (Repeated), so a double click or a re-sent
    POST writes one entry. A refused removal uses no key (the form can be sent again)."""
    if not key:
        raise ValueError("adjust_once takes a key")
    return await _adjust(session, account_id, amount, actor=actor, reason=reason, now=now, key=key)


async def _adjust(
    session: AsyncSession,
    account_id: str,
    amount: int,
    *,
    actor: str,
    reason: str,
    now: datetime,
    key: str | None = None,
) -> Shortfall | Repeated | None:
    rules.check_adjustment(amount, actor, reason)
    available = await lock_balance(session, account_id, now)
    if key is not None and await _by_key(session, key) is not None:
        return Repeated(key)
    if amount < 0 and (short := rules.spend(available, -amount)):
        return short
    await _append(
        session,
        account_id,
        EntryKind.ADMIN_ADJUSTMENT,
        amount,
        now,
        key=key,
        reason=reason,
        actor=actor,
    )
    logger(__name__).info("credits_adjusted", account_id=account_id, amount=amount, actor=actor)
    return None


async def reserve_for_job(
    session: AsyncSession, account_id: str, job_id: str, cost: int, now: datetime
) -> Reservation | Shortfall:
    """Take the job's cost, or say what is missing. Once per job: a repeated call returns
    the first reservation (a job costing nothing too: its entry of 0 is the record)."""
    available = await lock_balance(session, account_id, now)
    done = await _by_key(session, rules.reserve_key(job_id))
    if done is not None:
        return Reservation(job_id, -done.amount)
    if short := rules.spend(available, cost):
        return short
    await _append(
        session,
        account_id,
        EntryKind.JOB_RESERVE,
        -cost,
        now,
        job_id=job_id,
        key=rules.reserve_key(job_id),
    )
    return Reservation(job_id, cost)


async def settle_job(
    session: AsyncSession, job_id: str, *, charged: int, now: datetime
) -> int | None:
    """Give back what the job was not charged (its reservation minus `charged`); the refund,
    or None when there is nothing to settle: no reservation, or settled before."""
    reserved = await _by_key(session, rules.reserve_key(job_id))
    if reserved is None:
        return None
    await lock_balance(session, reserved.account_id, now)
    if await _by_key(session, rules.settle_key(job_id)) is not None:
        return None
    refund = rules.settlement_refund(-reserved.amount, charged)
    await _append(
        session,
        reserved.account_id,
        EntryKind.JOB_SETTLE,
        refund,
        now,
        job_id=job_id,
        key=rules.settle_key(job_id),
    )
    return refund


async def charge_single(
    session: AsyncSession, account_id: str, check_id: str, *, now: datetime
) -> Shortfall | None:
    """One credit for one address checked (`check_id`: unique per check, made by the
    caller); the shortfall when the balance is empty. Repeated: charged once."""
    available = await lock_balance(session, account_id, now)
    if await _by_key(session, rules.single_key(check_id)) is not None:
        return None
    if short := rules.spend(available, 1):
        return short
    await _append(
        session, account_id, EntryKind.SINGLE_CHECK, -1, now, key=rules.single_key(check_id)
    )
    return None


class SingleCharge(msgspec.Struct, frozen=True):
    """One credit wanted for one single check (`check_id`: fresh, made by the caller)."""

    account_id: str
    check_id: str
    now: datetime


async def charge_singles(
    session: AsyncSession, charges: Sequence[SingleCharge]
) -> list[int | Shortfall]:
    """`charge_single` of every charge (fresh check ids) at once, as if one after the other in
    the order given: for each, the balance left right after it, or its shortfall (an account
    whose balance ran out: `available` what was left). One statement locks the accounts'
    balance rows (in account order, so two processes' rounds cannot deadlock), one UPDATE per
    account moves its balance by what it was granted, guarded so that it cannot go below 0
    (an UPDATE that matches nothing raises: the caller's transaction is rolled back whole),
    and one multi-row INSERT appends the entries, numbered on from the account's last. An
    account without a balance row has 0 credits: refused, nothing written."""
    if not charges:
        return []
    accounts = sorted({charge.account_id for charge in charges})
    rows = (await session.execute(_lock_balances(), {"ids": accounts})).all()
    held = {account_id: (balance, entries) for account_id, balance, entries in rows}
    left = {account_id: held.get(account_id, (0, 0))[0] for account_id in accounts}
    granted: dict[str, int] = dict.fromkeys(accounts, 0)
    answers: list[int | Shortfall] = []
    entries: list[dict[str, object]] = []
    for charge in charges:
        account_id = charge.account_id
        if short := rules.spend(left[account_id], 1):
            answers.append(short)
            continue
        left[account_id] -= 1
        granted[account_id] += 1
        answers.append(left[account_id])
        entries.append(
            {
                "id": uuid.uuid4().hex,
                "account_id": account_id,
                "seq": held[account_id][1] + granted[account_id],
                "kind": EntryKind.SINGLE_CHECK.value,
                "amount": -1,
                "job_id": None,
                "key": rules.single_key(charge.check_id),
                "reason": "",
                "actor": "",
                "created_at": charge.now,
            }
        )
    if not entries:
        return answers
    now = max(charge.now for charge in charges)
    for account_id, count in granted.items():
        if not count:
            continue
        moved = await session.execute(
            _take_credits(), {"account": account_id, "count": count, "now": now}
        )
        if rowcount(moved) != 1:  # never under the lock: the guard of the rule
            raise RuntimeError("a balance would go below 0")
    await session.execute(_append_entries(), entries)
    return answers


async def refund_single(session: AsyncSession, check_id: str, *, now: datetime) -> bool:
    """Give back the credit of a single check (once; False if nothing was charged or it was
    refunded before)."""
    charge = await _by_key(session, rules.single_key(check_id))
    if charge is None:
        return False
    await lock_balance(session, charge.account_id, now)
    if await _by_key(session, rules.single_refund_key(check_id)) is not None:
        return False
    await _append(
        session,
        charge.account_id,
        EntryKind.SINGLE_REFUND,
        1,
        now,
        key=rules.single_refund_key(check_id),
    )
    return True


async def settle_single(
    session: AsyncSession, check_id: str, *, reason: str, now: datetime
) -> bool:
    """After a single check: refund it when its verdict's reason is a refunded one
    (domain.credits.REFUNDED_REASONS). True if refunded now."""
    if not rules.is_refunded(reason):
        return False
    return await refund_single(session, check_id, now=now)


# --- the pipeline's port -------------------------------------------------------------------


class SqlCreditLedger:
    """CreditLedger on `database` (one transaction per call): the owner of a job pays; a job
    without an owner, such as `mailvet validate`'s, is free. Whoever made `database`
    disposes it (build_deps: bootstrap.SharedDatabase)."""

    def __init__(self, database: Database, *, clock: Clock = utc_now) -> None:
        self._database = database
        self._clock = clock

    def charges(self, job: Job) -> bool:
        return bool(job.owner)

    async def reserve(self, job: Job, cost: int) -> Shortfall | None:
        if not self.charges(job):
            return None
        async with self._database.unit_of_work(write=True) as session:
            got = await reserve_for_job(session, job.owner, job.id, cost, self._clock())
        return got if isinstance(got, Shortfall) else None

    async def settle(self, job: Job, charged: int) -> None:
        if not self.charges(job):
            return
        async with self._database.unit_of_work(write=True) as session:
            await settle_job(session, job.id, charged=charged, now=self._clock())


# --- jobs that ended without their settlement ---------------------------------------------

SWEEP_BATCH = 100


class Unsettled(msgspec.Struct, frozen=True):
    """A job that ended with its reservation unsettled, and what settling it charges."""

    job_id: str
    charged: int


async def unsettled_jobs(
    session: AsyncSession, *, limit: int = SWEEP_BATCH, after: str = ""
) -> list[Unsettled]:
    """Reservations of jobs that have ended, completed or failed, without a settlement (by
    job id, from `after` on): what a failure between a job's end and its settlement leaves
    (the result generator settles right after the job completes; a failed job's release
    can fail too). A completed job is charged what its counts say (stored before it
    completed, the charge the result generator settles with); a failed one nothing."""
    failed = [status.value for status in JobStatus if status.is_error]
    query = (
        select(JobRow.id, JobRow.status, JobRow.counts)
        .select_from(LedgerEntryRow)
        .join(JobRow, JobRow.id == LedgerEntryRow.job_id)
        .where(
            LedgerEntryRow.kind == EntryKind.JOB_RESERVE.value,
            LedgerEntryRow.job_id > after,
            _unsettled(),
            or_(
                JobRow.status.in_(failed),
                and_(JobRow.status == JobStatus.COMPLETED.value, JobRow.counts.is_not(None)),
            ),
        )
        .order_by(JobRow.id)
        .limit(limit)
    )
    found: list[Unsettled] = []
    for job_id, status, counts in (await session.execute(query)).all():
        done = decode_counts(counts) if status == JobStatus.COMPLETED.value else None
        found.append(Unsettled(job_id, done.charged if done is not None else 0))
    return found


async def sweep_unsettled_jobs(database: Database, *, now: datetime) -> int:
    """Settle every job that ended without its settlement (`unsettled_jobs`), one
    transaction each; how many were settled. Idempotent (settle_job's key): replicas may
    run it at once, and a result generator settling the same job meanwhile settles it with
    the same charge."""
    settled = 0
    after = ""
    while True:
        async with database.session_maker() as session:
            found = await unsettled_jobs(session, after=after)
        for job in found:
            async with database.unit_of_work(write=True) as session:
                refund = await settle_job(session, job.job_id, charged=job.charged, now=now)
            if refund is not None:
                settled += 1
                logger(__name__).info(
                    "job_settled_late", job_id=job.job_id, charged=job.charged, refund=refund
                )
        if len(found) < SWEEP_BATCH:
            return settled
        after = found[-1].job_id


# --- rows ----------------------------------------------------------------------------------


async def lock_balance(session: AsyncSession, account_id: str, now: datetime) -> int:
    """Make sure the account's balance row exists and lock it for this transaction; its
    cached balance (what another use case, billing, decides on before calling the writers
    here, which take the same lock again at no cost). Its first statement writes (SQLite
    takes the write lock there, waiting for another writer, unless the caller's transaction
    read before: then the caller begins it as a writer: `database.write_intent`)."""
    values = {"account_id": account_id, "balance": 0, "entries": 0, "updated_at": now}
    await session.execute(
        dialect_insert(session, CreditBalanceRow).values(**values).on_conflict_do_nothing()
    )
    query = (
        select(CreditBalanceRow.balance)
        .where(CreditBalanceRow.account_id == account_id)
        .with_for_update()
    )
    return (await session.execute(query)).scalar_one()


async def _append(
    session: AsyncSession,
    account_id: str,
    kind: EntryKind,
    amount: int,
    now: datetime,
    *,
    job_id: str | None = None,
    key: str | None = None,
    reason: str = "",
    actor: str = "",
) -> None:
    values: dict[str, object] = {
        "balance": CreditBalanceRow.balance + amount,
        "entries": CreditBalanceRow.entries + 1,
        "updated_at": now,
    }
    if kind in rules.TOPUP_KINDS:  # what the low-credits mail measures against
        values["last_topup"] = amount
        values["last_topup_seq"] = CreditBalanceRow.entries + 1
    elif kind is EntryKind.PAYMENT_REFUND:  # a refund's fall is no reason to warn
        values["low_warned_seq"] = CreditBalanceRow.last_topup_seq
    moved = (
        update(CreditBalanceRow)
        .where(CreditBalanceRow.account_id == account_id)
        .values(values)
        .returning(CreditBalanceRow.entries)
        .execution_options(synchronize_session=False)
    )
    seq = (await session.execute(moved)).scalar_one()
    session.add(
        LedgerEntryRow(
            id=uuid.uuid4().hex,
            account_id=account_id,
            seq=seq,
            kind=kind.value,
            amount=amount,
            job_id=job_id,
            key=key,
            reason=reason[:REASON_MAX],
            actor=actor[:255],
            created_at=now,
        )
    )
    await session.flush()


# charge_singles' statements, built on first use and kept (their bind parameters vary)


@functools.cache
def _lock_balances() -> Select[str, int, int]:
    table = _balances()
    return (
        select(table.c.account_id, table.c.balance, table.c.entries)
        .where(table.c.account_id.in_(bindparam("ids", expanding=True)))
        .order_by(table.c.account_id)
        .with_for_update()
    )


@functools.cache
def _take_credits() -> Update:
    table = _balances()
    count = bindparam("count", type_=Integer)
    return (
        update(table)
        .where(table.c.account_id == bindparam("account"), table.c.balance >= count)
        .values(
            balance=table.c.balance - count,
            entries=table.c.entries + count,
            updated_at=bindparam("now"),
        )
    )


@functools.cache
def _append_entries() -> Insert:
    return insert(cast(Table, LedgerEntryRow.__table__))


def _balances() -> Table:
    return cast(Table, CreditBalanceRow.__table__)


async def _by_key(session: AsyncSession, key: str) -> LedgerEntryRow | None:
    query = select(LedgerEntryRow).where(LedgerEntryRow.key == key)
    return (await session.execute(query)).scalar_one_or_none()


def _unsettled() -> ColumnElement[bool]:
    """The condition on a reservation (LedgerEntryRow) that its job has no settlement."""
    settle = aliased(LedgerEntryRow)
    settled = select(settle.id).where(
        settle.kind == EntryKind.JOB_SETTLE.value, settle.job_id == LedgerEntryRow.job_id
    )
    return ~settled.exists()


async def _reserved(session: AsyncSession, account_id: str) -> int:
    query = select(func.coalesce(func.sum(-LedgerEntryRow.amount), 0)).where(
        LedgerEntryRow.account_id == account_id,
        LedgerEntryRow.kind == EntryKind.JOB_RESERVE.value,
        _unsettled(),
    )
    return int((await session.execute(query)).scalar_one())


def _entry(row: LedgerEntryRow) -> Entry:
    return Entry(
        id=row.id,
        account_id=row.account_id,
        kind=EntryKind(row.kind),
        amount=row.amount,
        created_at=row.created_at,
        job_id=row.job_id,
        key=row.key,
        reason=row.reason,
        actor=row.actor,
    )
