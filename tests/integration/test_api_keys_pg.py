"""API keys on PostgreSQL: a key checked by many requests at once is accepted by all and
records its last use once; a revocation is seen by the very next request; the keys go with
their account (the foreign key's cascade and delete_account_keys)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import argon2
import pytest
from argon2 import PasswordHasher
from sqlalchemy import delete, event, select

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.api_key_models import ApiKeyRow
from mailvet.adapters.db.database import Database
from mailvet.domain.api_keys import ApiPrincipal, Refusal
from mailvet.services import api_keys
from mailvet.services.accounts import create_account
from tests.pg import migrated_database, opened

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HASHER = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)
CONCURRENT = 30


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with migrated_database("mailvet_api_keys") as url:
        yield url


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    async with opened(pg_url) as database:
        yield database


async def test_keys_on_postgresql(db: Database) -> None:
    async with db.unit_of_work(write=True) as session:
        account = await create_account(
            session, email="pg-keys@example.com", password=None, hasher=HASHER, now=T0
        )
        made = await api_keys.create_key(session, account.id, label="pg", now=T0)

    updates: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            updates.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        answers = await asyncio.gather(
            *(api_keys.authenticate(db, made.key, now=T0) for _ in range(CONCURRENT))
        )
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert all(isinstance(answer, ApiPrincipal) for answer in answers)
    async with db.unit_of_work() as session:
        row = await session.get(ApiKeyRow, made.info.id)
        assert row is not None and row.last_used_at == T0
    # every request that saw no use yet may try; the conditional UPDATE lets one write win
    assert 1 <= len(updates) <= CONCURRENT
    assert await api_keys.authenticate(db, made.key, now=T0 + timedelta(seconds=30)) != (
        Refusal.INVALID
    )

    async with db.unit_of_work(write=True) as session:
        await api_keys.revoke_key(session, made.info.id, now=T0, account_id=account.id)
    assert await api_keys.authenticate(db, made.key, now=T0) == Refusal.REVOKED

    async with db.unit_of_work(write=True) as session:  # the cascade, on its own
        await session.execute(delete(AccountRow).where(AccountRow.id == account.id))
    async with db.unit_of_work() as session:
        left = await session.execute(select(ApiKeyRow).where(ApiKeyRow.account_id == account.id))
        assert left.first() is None
    assert await api_keys.authenticate(db, made.key, now=T0) == Refusal.INVALID
