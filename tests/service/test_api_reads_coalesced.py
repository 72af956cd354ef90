"""The API's reads coalesced (services/coalesce.py) on a migrated SQLite file: the key
lookups of requests made at the same moment are one SELECT (services/api_keys.authenticate),
and so are their account reads (a syntax-only check reads its account in its charge's round:
services/single_checks.check_offline); each still answers for its own key,
a key's last use is written once for the round, and a revocation counts from the next
request."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from mailvet.adapters.db.database import Database
from mailvet.domain.api_keys import ApiPrincipal, Refusal
from mailvet.domain.verdict import Check
from mailvet.pipeline.engine import Engine
from mailvet.services import api_keys
from mailvet.services import api_validation as api
from tests.api_validation_helpers import ScriptedProber, account_with, ledger
from tests.fakes import FakeResolver, MovingClock
from tests.service.test_api_keys import T0, an_account, key_row, new_key

pytestmark = pytest.mark.unit


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_c: object, _cur: object, statement: str, *_: object) -> None:
        seen.append(" ".join(statement.split()).upper())

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_concurrent_lookups_are_one_read_and_each_gets_its_own_key(db: Database) -> None:
    ann, bob = await an_account(db), await an_account(db, "bob@example.com")
    keys = [await new_key(db, ann, label="a"), await new_key(db, bob, label="b")]
    revoked = await new_key(db, ann, label="c")
    async with db.unit_of_work() as session:
        await api_keys.revoke_key(session, revoked.info.id, now=T0)
    texts = [keys[n % 2].key for n in range(40)] + [revoked.key, "mv_live_not_a_key"]
    with statements(db) as seen:
        got = await asyncio.gather(*(api_keys.authenticate(db, t, now=T0) for t in texts))
    for n, answer in enumerate(got[:40]):
        assert isinstance(answer, ApiPrincipal)
        assert (answer.key_id, answer.account_id) == (
            keys[n % 2].info.id,
            ann if n % 2 == 0 else bob,
        )
    assert got[40:] == [Refusal.REVOKED, Refusal.INVALID]
    reads = [s for s in seen if s.startswith("SELECT") and "FROM API_KEYS" in s]
    touches = [s for s in seen if s.startswith("UPDATE API_KEYS")]
    assert len(reads) == 1
    assert len(touches) == 2  # the last use of each key, once for the round
    assert (await key_row(db, keys[0].info.id)).last_used_at is not None


async def test_a_revocation_counts_from_the_next_request(db: Database) -> None:
    ann = await an_account(db)
    made = await new_key(db, ann)
    assert isinstance(await api_keys.authenticate(db, made.key, now=T0), ApiPrincipal)
    async with db.unit_of_work() as session:
        await api_keys.revoke_key(session, made.info.id, now=T0)
    assert await api_keys.authenticate(db, made.key, now=T0) == Refusal.REVOKED


async def test_concurrent_validations_read_their_accounts_once(db: Database) -> None:
    ann = await account_with(db, "ann-reads@example.com", 100)
    bob = await account_with(db, "bob-reads@example.com", 0, confirmed=False)
    engine = Engine(FakeResolver(), ScriptedProber())
    clock = MovingClock()

    async def call(n: int) -> object:
        account = bob.id if n == 0 else ann.id
        try:
            return await api.validate_one(
                db,
                engine,
                account,
                f"u{n}@example.org",
                checks=Check.SYNTAX,
                charging=True,
                clock=clock,
            )
        except api.MayNotValidate as refused:
            return refused

    try:
        with statements(db) as seen:
            got = await asyncio.gather(*(call(n) for n in range(20)))
    finally:
        await engine.close()
    assert isinstance(got[0], api.MayNotValidate)  # bob: not confirmed, read afresh
    assert (await ledger(db, bob.id)).entries == 0  # and charged nothing
    answered = [r for r in got[1:] if isinstance(r, api.ValidateResponse)]
    assert sorted(r.credits_remaining or 0 for r in answered) == list(range(81, 100))
    assert len([s for s in seen if s.startswith("SELECT") and "FROM ACCOUNTS" in s]) == 1


async def test_a_check_for_no_account_is_refused_and_charges_nothing(db: Database) -> None:
    engine = Engine(FakeResolver(), ScriptedProber())
    try:
        with pytest.raises(api.MayNotValidate, match="no such account"):
            await api.validate_one(
                db,
                engine,
                "0" * 32,
                "ann@example.org",
                checks=Check.SYNTAX,
                charging=True,
                clock=MovingClock(),
            )
    finally:
        await engine.close()
    assert (await ledger(db, "0" * 32)).entries == 0
