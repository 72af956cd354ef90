"""The credit ledger's use cases on a SQLite file (services/credits.py over the real schema)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.domain.credits import EntryKind, Reservation, Shortfall
from mailvet.domain.job import FileInfo, Job
from mailvet.services import credits
from tests.ledger_model import LedgerBook, cached_balance, entries_sum

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ALICE = "a" * 32
BOB = "b" * 32


async def funded(db: Database, account: str, amount: int) -> None:
    async with db.session_maker() as session, session.begin():
        await credits.grant(session, account, amount, kind=EntryKind.SIGNUP_GRANT, now=T0)


async def balance_of(db: Database, account: str) -> tuple[int, int, int | None]:
    """(sum of the entries, reserved, cached balance); the balance answered is the cached one."""
    async with db.session_maker() as session:
        got = await credits.balance(session, account)
        cached = await cached_balance(session, account)
        assert got.balance == (cached or 0)
        return await entries_sum(session, account), got.reserved, cached


async def entries(db: Database) -> int:
    async with db.session_maker() as session:
        return (await session.execute(select(func.count(LedgerEntryRow.id)))).scalar_one()


async def test_a_grant_with_a_key_is_made_once(db: Database) -> None:
    for _ in range(3):
        async with db.session_maker() as session, session.begin():
            await credits.grant(
                session, ALICE, 100, kind=EntryKind.PURCHASE, now=T0, key="pay:1", actor="stripe"
            )

    assert await balance_of(db, ALICE) == (100, 0, 100)
    assert await entries(db) == 1
    assert await balance_of(db, BOB) == (0, 0, None)  # another account saw nothing


async def test_grants_must_add(db: Database) -> None:
    async with db.session_maker() as session, session.begin():
        with pytest.raises(ValueError, match="adds credits"):
            await credits.grant(session, ALICE, -5, kind=EntryKind.PURCHASE, now=T0)
        with pytest.raises(ValueError, match="not a grant"):
            await credits.grant(session, ALICE, 5, kind=EntryKind.JOB_SETTLE, now=T0)


async def test_a_rolled_back_transaction_leaves_no_credit(db: Database) -> None:
    """Sign-up's grant rides in the caller's transaction: if sign-up fails, no credit."""

    class SignupFailed(Exception):
        pass

    with pytest.raises(SignupFailed):
        async with db.session_maker() as session, session.begin():
            await credits.grant(session, ALICE, 100, kind=EntryKind.SIGNUP_GRANT, now=T0)
            raise SignupFailed

    assert await balance_of(db, ALICE) == (0, 0, None)


async def test_a_job_reserves_and_settles_once(db: Database) -> None:
    await funded(db, ALICE, 100)
    async with db.session_maker() as session, session.begin():
        got = await credits.reserve_for_job(session, ALICE, "job1", 30, T0)
    assert got == Reservation("job1", 30)
    assert await balance_of(db, ALICE) == (70, 30, 70)

    async with db.session_maker() as session, session.begin():  # redelivered intake
        assert await credits.reserve_for_job(session, ALICE, "job1", 30, T0) == got
    assert await balance_of(db, ALICE) == (70, 30, 70)

    for _ in range(2):  # redelivered completion
        async with db.session_maker() as session, session.begin():
            refund = await credits.settle_job(session, "job1", charged=24, now=T0)
    assert refund is None  # the second time: nothing to settle
    assert await balance_of(db, ALICE) == (76, 0, 76)
    assert await entries(db) == 3


async def test_a_charge_above_the_reservation_costs_the_reservation(db: Database) -> None:
    await funded(db, ALICE, 10)
    async with db.session_maker() as session, session.begin():
        await credits.reserve_for_job(session, ALICE, "job1", 5, T0)
        assert await credits.settle_job(session, "job1", charged=99, now=T0) == 0
    assert await balance_of(db, ALICE) == (5, 0, 5)


async def test_a_job_beyond_the_balance_gets_the_shortfall_and_takes_nothing(
    db: Database,
) -> None:
    await funded(db, ALICE, 10)
    async with db.session_maker() as session, session.begin():
        got = await credits.reserve_for_job(session, ALICE, "job1", 11, T0)
    assert got == Shortfall(needed=11, available=10)
    assert isinstance(got, Shortfall) and got.missing == 1
    assert "needs 11" in got.message()
    assert await balance_of(db, ALICE) == (10, 0, 10)
    async with db.session_maker() as session, session.begin():  # nothing to settle either
        assert await credits.settle_job(session, "job1", charged=0, now=T0) is None


async def test_a_failed_job_is_released_in_full(db: Database) -> None:
    await funded(db, ALICE, 10)
    async with db.session_maker() as session, session.begin():
        await credits.reserve_for_job(session, ALICE, "job1", 7, T0)
        # what the pipeline does for a failed job: settle it with nothing charged
        assert await credits.settle_job(session, "job1", charged=0, now=T0) == 7
    assert await balance_of(db, ALICE) == (10, 0, 10)


async def test_single_checks_are_charged_and_refunded_once(db: Database) -> None:
    await funded(db, ALICE, 2)
    async with db.session_maker() as session, session.begin():
        assert await credits.charge_single(session, ALICE, "c1", now=T0) is None
        assert await credits.charge_single(session, ALICE, "c1", now=T0) is None  # replay
        assert await credits.charge_single(session, ALICE, "c2", now=T0) is None
        assert await credits.charge_single(session, ALICE, "c3", now=T0) == Shortfall(1, 0)
    assert await balance_of(db, ALICE) == (0, 0, 0)

    async with db.session_maker() as session, session.begin():
        assert await credits.settle_single(session, "c1", reason="accepted", now=T0) is False
        assert await credits.settle_single(session, "c2", reason="timeout", now=T0) is True
        assert await credits.settle_single(session, "c2", reason="timeout", now=T0) is False
        assert await credits.refund_single(session, "never", now=T0) is False
    assert await balance_of(db, ALICE) == (1, 0, 1)


async def test_an_adjustment_says_who_and_why_and_cannot_overdraw(db: Database) -> None:
    await funded(db, ALICE, 5)
    async with db.session_maker() as session, session.begin():
        with pytest.raises(ValueError, match="who"):
            await credits.adjust(session, ALICE, 3, actor="", reason="gift", now=T0)
        assert await credits.adjust(
            session, ALICE, -6, actor="admin", reason="chargeback", now=T0
        ) == Shortfall(6, 5)
        assert (
            await credits.adjust(session, ALICE, -5, actor="admin", reason="chargeback", now=T0)
            is None
        )
        assert (
            await credits.adjust(session, ALICE, 3, actor="admin", reason="goodwill", now=T0)
            is None
        )
    assert await balance_of(db, ALICE) == (3, 0, 3)
    async with db.session_maker() as session:
        page = await credits.history(session, ALICE)
    [latest, removal, _grant] = page.items
    assert (latest.kind, latest.amount, latest.actor, latest.reason) == (
        EntryKind.ADMIN_ADJUSTMENT,
        3,
        "admin",
        "goodwill",
    )
    assert (removal.amount, removal.reason) == (-5, "chargeback")


async def test_history_is_newest_first_and_paginated(db: Database) -> None:
    await funded(db, ALICE, 100)
    async with db.session_maker() as session, session.begin():
        for minute in range(1, 6):
            await credits.reserve_for_job(
                session, ALICE, f"job{minute}", minute, T0 + timedelta(minutes=minute)
            )
    async with db.session_maker() as session:
        first = await credits.history(session, ALICE, limit=4)
        second = await credits.history(session, ALICE, limit=4, offset=4)
    assert [entry.job_id for entry in first.items] == ["job5", "job4", "job3", "job2"]
    assert first.total == 6 and first.has_more
    assert [entry.job_id for entry in second.items] == ["job1", None]
    assert second.items[1].kind is EntryKind.SIGNUP_GRANT
    assert not second.has_more
    assert all(entry.created_at.tzinfo is not None for entry in first.items)


async def test_concurrent_reserves_on_sqlite_never_overdraw(db: Database) -> None:
    """Separate sessions at once: SQLite's writers queue, and each sees the one before."""
    await funded(db, ALICE, 50)

    async def reserve(n: int) -> Reservation | Shortfall:
        async with db.session_maker() as session, session.begin():
            return await credits.reserve_for_job(session, ALICE, f"job{n}", 7, T0)

    results = await asyncio.gather(*(reserve(n) for n in range(12)))

    reserved = [got for got in results if isinstance(got, Reservation)]
    assert len(reserved) == 7  # 7 x 7 = 49 of 50
    assert await balance_of(db, ALICE) == (1, 49, 1)


async def test_the_cached_balance_equals_the_sum_after_every_kind_of_step(db: Database) -> None:
    await funded(db, ALICE, 40)
    steps: list[Callable[[AsyncSession], Awaitable[object]]] = [
        lambda s: credits.reserve_for_job(s, ALICE, "j1", 12, T0),
        lambda s: credits.charge_single(s, ALICE, "c1", now=T0),
        lambda s: credits.settle_job(s, "j1", charged=5, now=T0),
        lambda s: credits.refund_single(s, "c1", now=T0),
        lambda s: credits.adjust(s, ALICE, -3, actor="admin", reason="test", now=T0),
        lambda s: credits.grant(s, ALICE, 9, kind=EntryKind.REFUND, now=T0, key="r1"),
        lambda s: credits.reserve_for_job(s, ALICE, "j2", 100, T0),  # refused
    ]
    for step in steps:
        async with db.session_maker() as session, session.begin():
            await step(session)
        total, _, cached = await balance_of(db, ALICE)
        assert cached == total
    assert await balance_of(db, ALICE) == (40 - 12 - 1 + 7 + 1 - 3 + 9, 0, 41)


async def test_the_pipeline_ledger_charges_owned_jobs_only(db: Database) -> None:
    await funded(db, ALICE, 10)
    ledger = credits.SqlCreditLedger(db, clock=lambda: T0)
    owned = Job(id=uuid.uuid4().hex, file=FileInfo(filename="a.csv"), owner=ALICE)
    anonymous = Job(id=uuid.uuid4().hex, file=FileInfo(filename="a.csv"))

    assert ledger.charges(owned) and not ledger.charges(anonymous)
    assert await ledger.reserve(anonymous, 1000) is None
    assert await ledger.reserve(owned, 11) == Shortfall(11, 10)
    assert await ledger.reserve(owned, 8) is None
    await ledger.settle(anonymous, 0)  # nothing to settle: the ledger passes it over
    await ledger.settle(owned, 6)
    await ledger.settle(owned, 0)  # once only
    assert await balance_of(db, ALICE) == (4, 0, 4)


@pytest.mark.parametrize("seed", range(2))
async def test_the_service_decides_as_the_reference_book(db: Database, seed: int) -> None:
    """Random steps (replays included) on the SQL service and on tests/ledger_model.LedgerBook:
    the same answers, the same balances, after every step."""
    rng = random.Random(seed)
    book = LedgerBook()
    accounts = (ALICE, BOB)
    for _ in range(40):
        account = rng.choice(accounts)
        job = f"job{rng.randrange(6)}"
        check = f"check{rng.randrange(6)}"
        kind = rng.randrange(6)
        async with db.session_maker() as session, session.begin():
            if kind == 0:
                amount, key = rng.randint(1, 30), rng.choice([None, "k1", "k2"])
                got: object = await credits.grant(
                    session, account, amount, kind=EntryKind.PURCHASE, now=T0, key=key
                )
                want: object = book.grant(account, amount, kind=EntryKind.PURCHASE, now=T0, key=key)
            elif kind == 1:
                cost = rng.randint(0, 40)
                got = await credits.reserve_for_job(session, account, job, cost, T0)
                want = book.reserve_for_job(account, job, cost, T0)
            elif kind == 2:
                charged = rng.randint(0, 50)
                got = await credits.settle_job(session, job, charged=charged, now=T0)
                want = book.settle_job(job, charged=charged, now=T0)
            elif kind == 3:
                got = await credits.charge_single(session, account, check, now=T0)
                want = book.charge_single(account, check, T0)
            elif kind == 4:
                got = await credits.refund_single(session, check, now=T0)
                want = book.refund_single(check, T0)
            else:
                amount = rng.choice([-20, -5, 5, 20])
                got = await credits.adjust(
                    session, account, amount, actor="admin", reason="test", now=T0
                )
                want = book.adjust(account, amount, actor="admin", reason="test", now=T0)
        assert got == want
        async with db.session_maker() as session:
            for each in accounts:
                now = await credits.balance(session, each)
                assert now == book.balance(each)
                assert await cached_balance(session, each) in (now.balance, None)
                assert await entries_sum(session, each) == now.balance
                assert now.balance >= 0
    assert await entries(db) == len(book.entries)


async def test_the_database_refuses_to_change_or_remove_an_entry(db: Database) -> None:
    """Append-only is the database's rule (migration 0009's triggers), whoever connects."""
    await funded(db, ALICE, 5)
    for statement in ("UPDATE ledger_entries SET amount = 500", "DELETE FROM ledger_entries"):
        with pytest.raises(DBAPIError, match="ledger entries are append-only"):
            async with db.session_maker() as session, session.begin():
                await session.execute(text(statement))
    async with db.session_maker() as session:
        entries = (await credits.history(session, ALICE)).items
    assert [(entry.kind, entry.amount) for entry in entries] == [(EntryKind.SIGNUP_GRANT, 5)]
