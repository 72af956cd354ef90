"""API keys on the database (services/api_keys.py), on a migrated embedded SQLite file: made
once and stored as a digest, listed without secrets, revoked owner-scoped, and checked by
`authenticate` with every refusal; last use written at most once a minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import argon2
import pytest
from argon2 import PasswordHasher
from sqlalchemy import event, update

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.api_key_models import ApiKeyRow
from mailvet.adapters.db.database import Database
from mailvet.domain.api_keys import ALL_SCOPES, ApiPrincipal, Refusal, Scope
from mailvet.services import api_keys
from mailvet.services.accounts import create_account

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HASHER = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


async def an_account(db: Database, email: str = "ann@example.com") -> str:
    async with db.unit_of_work(write=True) as session:
        account = await create_account(session, email=email, password=None, hasher=HASHER, now=T0)
    return account.id


async def new_key(db: Database, account_id: str, **options: object) -> api_keys.CreatedKey:
    async with db.unit_of_work(write=True) as session:
        return await api_keys.create_key(
            session,
            account_id,
            label=str(options.pop("label", "CRM sync")),
            now=T0,
            **options,  # type: ignore[arg-type]
        )


async def key_row(db: Database, key_id: str) -> ApiKeyRow:
    async with db.unit_of_work() as session:
        row = await session.get(ApiKeyRow, key_id)
    assert row is not None
    return row


async def test_a_key_is_returned_once_and_only_its_digest_is_stored(db: Database) -> None:
    ann = await an_account(db)
    made = await new_key(db, ann)
    assert made.key.startswith(f"mv_{made.info.id}_")
    row = await key_row(db, made.info.id)
    secret = made.key.rsplit("_", 1)[1]
    assert secret not in row.secret_hash and made.key not in repr(row.__dict__)
    assert (row.account_id, row.label, row.scopes) == (
        ann,
        "CRM sync",
        "jobs:read jobs:write validate",
    )
    assert row.created_at == T0 and row.expires_at is None and row.revoked_at is None

    [listed] = await listing(db, ann)
    assert listed == made.info
    assert "mv_" not in repr(listed)  # the list has no secret
    assert set(listed.scopes) == {scope.value for scope in ALL_SCOPES}


async def listing(db: Database, account_id: str) -> list[api_keys.ApiKeyInfo]:
    async with db.unit_of_work() as session:
        return await api_keys.list_keys(session, account_id)


async def test_bad_input_is_refused_and_nothing_is_stored(db: Database) -> None:
    ann = await an_account(db)
    for options in ({"label": "  "}, {"scopes": ["validate", "root"]}, {"label": "x" * 101}):
        with pytest.raises(api_keys.InvalidApiKeyInput):
            await new_key(db, ann, **options)
    with pytest.raises(api_keys.NoSuchAccount):
        await new_key(db, "f" * 32)
    assert await listing(db, ann) == []


async def test_an_account_holds_a_bounded_number_of_live_keys(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_keys, "MAX_LIVE_KEYS", 2)
    ann = await an_account(db)
    first = await new_key(db, ann)
    await new_key(db, ann)
    with pytest.raises(api_keys.InvalidApiKeyInput, match="at most 2"):
        await new_key(db, ann)
    async with db.unit_of_work(write=True) as session:
        await api_keys.revoke_key(session, first.info.id, now=T0)
    await new_key(db, ann)  # a revoked key does not count


async def test_authenticate_finds_the_principal(db: Database) -> None:
    ann = await an_account(db)
    made = await new_key(db, ann, scopes=["validate"])
    got = await api_keys.authenticate(db, made.key, now=T0)
    assert got == ApiPrincipal(
        account_id=ann, key_id=made.info.id, scopes=frozenset({Scope.VALIDATE})
    )


@pytest.mark.parametrize(
    "text", [None, "", "   ", "mv_nope", "Bearer x", "mv_" + "a" * 16 + "_" + "b" * 43, "é" * 5000]
)
async def test_missing_and_malformed_keys(db: Database, text: str | None) -> None:
    await new_key(db, await an_account(db))
    expected = Refusal.MISSING if not (text or "").strip() else Refusal.INVALID
    assert await api_keys.authenticate(db, text, now=T0) == expected


async def test_a_wrong_secret_of_a_real_id_is_invalid(db: Database) -> None:
    made = await new_key(db, await an_account(db))
    forged = made.key[:-1] + ("A" if made.key[-1] != "A" else "B")
    assert await api_keys.authenticate(db, forged, now=T0) == Refusal.INVALID


async def test_revocation_and_expiry_take_effect_at_once(db: Database) -> None:
    ann = await an_account(db)
    made = await new_key(db, ann, expires_at=T0 + timedelta(hours=1))
    assert isinstance(await api_keys.authenticate(db, made.key, now=T0), ApiPrincipal)
    later = T0 + timedelta(hours=1, seconds=1)
    assert await api_keys.authenticate(db, made.key, now=later) == Refusal.EXPIRED

    other = await new_key(db, ann)
    async with db.unit_of_work(write=True) as session:
        revoked = await api_keys.revoke_key(session, other.info.id, now=T0, account_id=ann)
    assert revoked is not None and revoked.revoked and revoked.revoked_at == T0
    assert await api_keys.authenticate(db, other.key, now=T0) == Refusal.REVOKED
    async with db.unit_of_work(write=True) as session:  # again: the first time is kept
        again = await api_keys.revoke_key(session, other.info.id, now=later)
    assert again is not None and again.revoked_at == T0


async def test_a_past_expiry_makes_an_expired_key(db: Database) -> None:
    ann = await an_account(db)
    made = await new_key(db, ann, expires_at=T0 - timedelta(days=1))
    assert await api_keys.authenticate(db, made.key, now=T0) == Refusal.EXPIRED
    [listed] = await listing(db, ann)
    assert listed.expired(T0) and not listed.revoked


async def test_a_disabled_account_is_refused(db: Database) -> None:
    ann = await an_account(db)
    made = await new_key(db, ann)
    async with db.unit_of_work(write=True) as session:
        await session.execute(update(AccountRow).where(AccountRow.id == ann).values(disabled=True))
    assert await api_keys.authenticate(db, made.key, now=T0) == Refusal.DISABLED_ACCOUNT


async def test_revoking_is_owner_scoped_for_the_page_and_open_to_the_cli(db: Database) -> None:
    ann, bob = await an_account(db), await an_account(db, "bob@example.com")
    bobs = await new_key(db, bob)
    async with db.unit_of_work(write=True) as session:
        assert await api_keys.revoke_key(session, bobs.info.id, now=T0, account_id=ann) is None
        assert await api_keys.revoke_key(session, "not an id", now=T0) is None
        assert await api_keys.revoke_key(session, "A" * 16, now=T0) is None
    assert isinstance(await api_keys.authenticate(db, bobs.key, now=T0), ApiPrincipal)
    async with db.unit_of_work(write=True) as session:  # the CLI: any account's key
        assert await api_keys.revoke_key(session, bobs.info.id, now=T0) is not None
    assert await api_keys.authenticate(db, bobs.key, now=T0) == Refusal.REVOKED


async def test_last_use_is_written_at_most_once_a_minute(db: Database) -> None:
    made = await new_key(db, await an_account(db))
    writes: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            writes.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        for second in range(0, 59, 3):  # 20 requests within the first minute
            assert isinstance(
                await api_keys.authenticate(db, made.key, now=T0 + timedelta(seconds=second)),
                ApiPrincipal,
            )
        assert len(writes) == 1
        assert (await key_row(db, made.info.id)).last_used_at == T0
        await api_keys.authenticate(db, made.key, now=T0 + timedelta(seconds=61))
        assert len(writes) == 2
        assert (await key_row(db, made.info.id)).last_used_at == T0 + timedelta(seconds=61)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def test_a_key_is_read_by_its_id_never_by_a_scan(db: Database) -> None:
    ann = await an_account(db)
    made = [await new_key(db, ann, label=f"key {n}") for n in range(3)]
    statements: list[tuple[str, object]] = []

    def record(
        _conn: object, _cursor: object, statement: str, parameters: object, *_: object
    ) -> None:
        statements.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        await api_keys.authenticate(db, made[1].key, now=T0)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    [(read, parameters)] = [
        (s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT")
    ]
    assert "api_keys.id = ?" in read
    async with db.unit_of_work() as session:
        connection = await session.connection()
        plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {read}", parameters)  # type: ignore[arg-type]
        steps = " | ".join(str(row[-1]) for row in plan)
    assert "SEARCH api_keys USING" in steps and "SCAN api_keys" not in steps, steps
