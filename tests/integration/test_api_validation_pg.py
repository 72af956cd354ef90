"""The API's validation on PostgreSQL under concurrency (services/api_validation.py): 64
clients on an account with 100 credits get exactly 100 answers, the rest the refusal, and
concurrent batches reserve all-or-nothing without overdrawing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from mailvet.adapters.db.database import Database
from mailvet.domain.verdict import Check
from mailvet.pipeline.engine import Engine
from mailvet.services import api_validation as api
from mailvet.services.api_validation import NotEnoughCredits
from tests.api_validation_helpers import (
    CALLS_EACH,
    CLIENTS,
    Ledger,
    ScriptedProber,
    account_with,
    ledger,
    many_clients,
)
from tests.fakes import FakeResolver, MovingClock
from tests.pg import migrated_database, opened

pytestmark = pytest.mark.integration

CLOCK = MovingClock()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with migrated_database("mailvet_api_validation") as url:
        yield url


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    async with opened(pg_url) as database:
        yield database


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    engine = Engine(FakeResolver(), ScriptedProber())
    try:
        yield engine
    finally:
        await engine.close()


async def test_64_concurrent_clients_on_100_credits_get_exactly_100_answers(
    db: Database, engine: Engine
) -> None:
    ann = await account_with(db, "ann@example.com", 100)

    async def call(n: int) -> bool:
        try:
            await api.validate_one(
                db,
                engine,
                ann.id,
                f"user{n}@example.org",
                checks=Check.SYNTAX,
                charging=True,
                clock=CLOCK,
            )
        except NotEnoughCredits:
            return False
        return True

    answered, refused = await many_clients(call)

    assert (answered, refused) == (100, CLIENTS * CALLS_EACH - 100)
    assert await ledger(db, ann.id) == Ledger(
        balance=0, entries=101, spent=100, refunded=0, pending=0
    )


async def test_concurrent_batches_reserve_all_or_nothing(db: Database, engine: Engine) -> None:
    bob = await account_with(db, "bob@example.com", 100)

    async def call(n: int) -> bool:
        emails = [f"b{n}-{k}@example.org" for k in range(7)]
        try:
            await api.validate_batch(
                db, engine, bob.id, emails, checks=Check.SYNTAX, charging=True, clock=CLOCK
            )
        except NotEnoughCredits:
            return False
        return True

    answered, refused = await many_clients(call, clients=32, calls_each=1)

    assert (answered, refused) == (14, 18)  # 14 x 7 = 98 of 100
    assert await ledger(db, bob.id) == Ledger(
        balance=2, entries=99, spent=98, refunded=0, pending=0
    )
