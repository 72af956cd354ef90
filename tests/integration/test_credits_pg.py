"""The credit ledger on PostgreSQL under concurrency: many sessions spending one account at
once never overdraw it, and every idempotent step happens once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import DBAPIError

from mailvet.adapters.db import migrate
from mailvet.adapters.db.database import Database, make_database
from mailvet.adapters.db.ledger_models import CreditBalanceRow, LedgerEntryRow
from mailvet.domain.credits import EntryKind, Reservation, Shortfall
from mailvet.services import credits
from tests.ledger_model import cached_balance, entries_sum
from tests.pg import scratch_database, url_of

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ALICE = "a" * 32
CONCURRENT = 40


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with scratch_database("mailvet_credits") as name:
        url = url_of(name)
        migrate.upgrade(url)
        yield url


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    database = make_database(pg_url)
    async with database.session_maker() as session, session.begin():  # a clean ledger
        # the entries are append-only (migration 0009's triggers): this test's own cleanup
        # switches triggers off for its session (a superuser's right), nothing else does
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        await session.execute(delete(LedgerEntryRow))
        await session.execute(delete(CreditBalanceRow))
    try:
        yield database
    finally:
        await database.dispose()


async def totals(db: Database, account: str) -> tuple[int, int, int | None, int]:
    """(sum of the entries, reserved, cached balance, entries)."""
    async with db.session_maker() as session:
        got = await credits.balance(session, account)
        count = select(func.count()).where(LedgerEntryRow.account_id == account)
        return (
            await entries_sum(session, account),
            got.reserved,
            await cached_balance(session, account),
            (await session.execute(count)).scalar_one(),
        )


async def test_concurrent_reserves_of_one_account_never_overdraw(db: Database) -> None:
    async with db.session_maker() as session, session.begin():
        await credits.grant(session, ALICE, 100, kind=EntryKind.SIGNUP_GRANT, now=T0)

    async def reserve(n: int) -> Reservation | Shortfall:
        async with db.session_maker() as session, session.begin():
            return await credits.reserve_for_job(session, ALICE, f"job{n}", 7, T0)

    results = await asyncio.gather(*(reserve(n) for n in range(CONCURRENT)))

    granted = [got for got in results if isinstance(got, Reservation)]
    refused = [got for got in results if isinstance(got, Shortfall)]
    assert len(granted) == 14  # 14 x 7 = 98 of 100
    assert len(refused) == CONCURRENT - 14
    assert all(short.available == 2 for short in refused)  # each saw the final balance
    assert await totals(db, ALICE) == (2, 98, 2, 15)


async def test_concurrent_reserves_checks_and_settles_end_at_the_exact_balance(
    db: Database,
) -> None:
    """Jobs reserving, single checks charging, and replays of both, all at once, on an
    account that had no balance row yet (its first writers race to make it)."""

    async def step(n: int) -> None:
        async with db.session_maker() as session, session.begin():
            if n % 4 == 0:
                await credits.grant(
                    session, ALICE, 10, kind=EntryKind.PURCHASE, now=T0, key=f"pay{n % 8}"
                )
            elif n % 4 == 1:
                await credits.reserve_for_job(session, ALICE, f"job{n % 12}", 3, T0)
            elif n % 4 == 2:
                await credits.charge_single(session, ALICE, f"check{n % 6}", now=T0)
            else:
                await credits.settle_job(session, f"job{(n - 2) % 12}", charged=1, now=T0)

    await asyncio.gather(*(step(n) for n in range(CONCURRENT)))

    total, reserved, cached, _ = await totals(db, ALICE)
    assert total >= 0
    assert cached == total
    async with db.session_maker() as session:
        rows = (
            await session.execute(select(LedgerEntryRow).where(LedgerEntryRow.account_id == ALICE))
        ).scalars()
        entries = list(rows)
    # every key at most once, the entries numbered 1..n without a gap
    keys = [entry.key for entry in entries if entry.key is not None]
    assert len(keys) == len(set(keys))
    assert sorted(entry.seq for entry in entries) == list(range(1, len(entries) + 1))
    grants = [entry for entry in entries if entry.kind == EntryKind.PURCHASE]
    assert len(grants) == 2  # pay0 and pay4, whatever the replays
    reserves = {e.job_id: -e.amount for e in entries if e.kind == EntryKind.JOB_RESERVE}
    settles = {e.job_id: e.amount for e in entries if e.kind == EntryKind.JOB_SETTLE}
    assert set(settles) <= set(reserves)
    assert all(settles[job] == reserves[job] - 1 for job in settles)
    singles = [e for e in entries if e.kind == EntryKind.SINGLE_CHECK]
    assert total == 10 * len(grants) - sum(reserves.values()) + sum(settles.values()) - len(singles)
    assert reserved == sum(cost for job, cost in reserves.items() if job not in settles)


async def test_a_settlement_replayed_at_once_refunds_once(db: Database) -> None:
    async with db.session_maker() as session, session.begin():
        await credits.grant(session, ALICE, 50, kind=EntryKind.SIGNUP_GRANT, now=T0)
        await credits.reserve_for_job(session, ALICE, "job", 50, T0)

    async def settle() -> int | None:
        async with db.session_maker() as session, session.begin():
            return await credits.settle_job(session, "job", charged=20, now=T0)

    refunds = await asyncio.gather(*(settle() for _ in range(10)))

    assert sorted(refunds, key=lambda r: r is None) == [30] + [None] * 9
    assert await totals(db, ALICE) == (30, 0, 30, 3)


async def test_the_database_refuses_to_change_or_remove_an_entry(db: Database) -> None:
    """Append-only is the database's rule, whoever connects (migration 0009)."""
    async with db.session_maker() as session, session.begin():
        await credits.grant(session, "acct-append", 5, kind=EntryKind.SIGNUP_GRANT, now=T0)
    for statement in (
        "UPDATE ledger_entries SET amount = 500",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries",
    ):
        with pytest.raises(DBAPIError, match="ledger entries are append-only"):
            async with db.session_maker() as session, session.begin():
                await session.execute(text(statement))
    async with db.session_maker() as session:
        entries = (await credits.history(session, "acct-append")).items
    assert [(entry.kind, entry.amount) for entry in entries] == [(EntryKind.SIGNUP_GRANT, 5)]
