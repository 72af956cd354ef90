"""Group commit of single checks' credits (services/single_checks.charge_coalesced over
services/credits.charge_singles), on SQLite and PostgreSQL: the charges a process makes at
the same moment are one transaction, exact as if made one by one (balances, shortfalls, the
ledger's numbering), several accounts in one round, and a failed round fails exactly its
own charges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from mailvet.adapters.db import migrate
from mailvet.adapters.db.database import Database
from mailvet.adapters.db.ledger_models import CreditBalanceRow, LedgerEntryRow, PendingCheckRow
from mailvet.domain.credits import Shortfall
from mailvet.services.single_checks import charge_coalesced
from tests.api_validation_helpers import T0, account_with, ledger
from tests.pg import migrated_database, opened


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with migrated_database("mailvet_charge_rounds") as url:
        yield url


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.unit),
        pytest.param("postgresql", marks=pytest.mark.integration),
    ]
)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/mailvet.db"
        await migrate.upgrade_async(url)
    else:
        url = request.getfixturevalue("pg_url")
    async with opened(url) as database:
        yield database


def _ids(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{k:0>{32 - len(prefix)}}" for k in range(n)]


async def _seqs(db: Database, account_id: str) -> list[int]:
    async with db.session_maker() as session:
        query = select(LedgerEntryRow.seq).where(LedgerEntryRow.account_id == account_id)
        return sorted((await session.execute(query)).scalars())


async def test_charges_made_together_are_exact_as_if_one_by_one(db: Database) -> None:
    ann = await account_with(db, "ann-rounds@example.com", 5)
    got = await asyncio.gather(
        *(charge_coalesced(db, ann.id, check_id, now=T0) for check_id in _ids(8, "a"))
    )
    assert got[:5] == [4, 3, 2, 1, 0]  # each the balance right after its own charge
    assert got[5:] == [Shortfall(needed=1, available=0)] * 3
    assert (await ledger(db, ann.id)).balance == 0
    assert (await ledger(db, ann.id)).spent == 5
    assert await _seqs(db, ann.id) == [1, 2, 3, 4, 5, 6]  # the grant, then gap-free
    # the cached balance row agrees with the entries
    async with db.session_maker() as session:
        row = await session.get(CreditBalanceRow, ann.id)
        assert row is not None and (row.balance, row.entries) == (0, 6)


async def test_one_round_serves_several_accounts_each_exactly(db: Database) -> None:
    ann = await account_with(db, "ann-two@example.com", 3)
    bob = await account_with(db, "bob-two@example.com", 1)
    calls = [(ann.id if k % 2 else bob.id, check_id) for k, check_id in enumerate(_ids(8, "b"))]
    got = await asyncio.gather(*(charge_coalesced(db, a, c, now=T0) for a, c in calls))
    for_ann = [answer for (account, _), answer in zip(calls, got, strict=True) if account == ann.id]
    for_bob = [answer for (account, _), answer in zip(calls, got, strict=True) if account == bob.id]
    assert for_ann == [2, 1, 0, Shortfall(needed=1, available=0)]
    assert for_bob == [0, *[Shortfall(needed=1, available=0)] * 3]
    assert ((await ledger(db, ann.id)).balance, (await ledger(db, bob.id)).balance) == (0, 0)


async def test_pending_charges_leave_their_pending_rows(db: Database) -> None:
    ann = await account_with(db, "ann-pending@example.com", 2)
    ids = _ids(3, "c")
    got = await asyncio.gather(
        *(charge_coalesced(db, ann.id, check_id, now=T0, pending=True) for check_id in ids)
    )
    assert got == [1, 0, Shortfall(needed=1, available=0)]
    async with db.session_maker() as session:
        rows = (await session.execute(select(PendingCheckRow.check_id))).scalars()
        assert sorted(rows) == ids[:2]


async def test_a_failed_round_fails_exactly_its_charges(db: Database) -> None:
    ann = await account_with(db, "ann-fail@example.com", 10)
    eve = await account_with(db, "eve-fail@example.com", 10)
    async with db.unit_of_work() as session:  # the database refuses eve's entries
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(
                text(
                    "CREATE OR REPLACE FUNCTION refuse_eve() RETURNS trigger LANGUAGE plpgsql"
                    " AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$"
                )
            )
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_eve BEFORE INSERT ON ledger_entries FOR EACH ROW"
                    f" WHEN (NEW.account_id = '{eve.id}') EXECUTE FUNCTION refuse_eve()"
                )
            )
        else:
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_eve BEFORE INSERT ON ledger_entries"
                    f" WHEN NEW.account_id = '{eve.id}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
    try:
        calls = [ann.id, ann.id, eve.id, ann.id]
        failed = await asyncio.gather(
            *(
                charge_coalesced(db, account, check_id, now=T0)
                for account, check_id in zip(calls, _ids(4, "d"), strict=True)
            ),
            return_exceptions=True,
        )
        assert all(isinstance(answer, Exception) for answer in failed)
        assert (await ledger(db, ann.id)).balance == 10  # nothing of that round was made
        # the next round stands on its own
        assert await charge_coalesced(db, ann.id, "e" * 32, now=T0) == 9
        assert await _seqs(db, ann.id) == [1, 2]
    finally:
        async with db.unit_of_work() as session:
            await session.execute(
                text(
                    "DROP TRIGGER refuse_eve"
                    + (
                        " ON ledger_entries"
                        if session.get_bind().dialect.name == "postgresql"
                        else ""
                    )
                )
            )
