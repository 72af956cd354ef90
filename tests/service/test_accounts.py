"""The account use cases (services/accounts.py) on a migrated SQLite file, and the ones where
the database matters (races, locks) on PostgreSQL too. No HTTP: what a controller would call.

Time is a hand-moved clock; mail is read from the outbox rows the use cases add; argon2 runs
with its cheapest parameters."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import argon2
import psycopg
import pyotp
import pytest
from argon2 import PasswordHasher
from cryptography.fernet import InvalidToken as InvalidTokenError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db import migrate
from mailvet.adapters.db.account_models import AccountRow, EmailCodeRow, RecoveryCodeRow
from mailvet.adapters.db.database import Database, make_database
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.adapters.db.schema import metadata
from mailvet.adapters.db.session_models import WebSessionRow
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.domain import accounts as rules
from mailvet.domain.accounts import CodeOutcome
from mailvet.domain.credits import EntryKind
from mailvet.domain.identity import GoogleIdentity
from mailvet.pipeline import object_keys
from mailvet.services import credits, sessions
from mailvet.services.accounts import (
    AccountExists,
    AccountKeys,
    AccountService,
    InvalidInput,
    InvalidToken,
    PasswordChange,
    create_account,
    find_account,
    get_account,
    search_accounts,
)
from tests.pg import scratch_database, url_of

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
EMAIL = "Ann.Smith@Example.com"
ADDRESS = "ann.smith@example.com"
HASHER = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with scratch_database("mailvet_accounts") as name:
        url = url_of(name)
        # first asked for inside a running event loop (the db fixture): migrate off it
        with ThreadPoolExecutor(1) as pool:
            pool.submit(migrate.upgrade, url).result()
        yield url


@pytest.fixture
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database: a new SQLite file, or (param "postgresql") the session's
    PostgreSQL database emptied."""
    if getattr(request, "param", "sqlite") == "postgresql":
        url = request.getfixturevalue("postgres_url")
        tables = ", ".join(metadata.tables)
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            # triggers off for this cleanup's session: the ledger's entries are append-only
            conn.execute("SET session_replication_role = replica")
            conn.execute(f"TRUNCATE {tables} CASCADE")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path}/mailvet.db"
        await migrate.upgrade_async(url)
    database = make_database(url)
    try:
        yield database
    finally:
        await database.dispose()


BOTH = pytest.mark.parametrize(
    "db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)], indirect=True
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def service(clock: Clock, storage: MemoryStorage) -> AccountService:
    return AccountService(
        hasher=HASHER,
        keys=AccountKeys.from_secret("test secret key"),
        public_url="https://mailvet.example/",
        free_credits=100,
        storage=storage,
        clock=clock,
    )


async def mails(db: Database, template: str | None = None) -> list[OutboxRow]:
    async with db.session_maker() as session:
        query = select(OutboxRow).order_by(OutboxRow.created_at, OutboxRow.id)
        if template is not None:
            query = query.where(OutboxRow.template == template)
        return list((await session.execute(query)).scalars())


async def last_code(db: Database) -> str:
    rows = await mails(db, "confirm_code")
    return str(max(rows, key=lambda r: r.created_at).context["code"])


async def row_of(db: Database, address: str = ADDRESS) -> AccountRow:
    async with db.session_maker() as session:
        query = select(AccountRow).where(AccountRow.email == address)
        return (await session.execute(query)).scalar_one()


async def count(db: Database, model: Any) -> int:
    async with db.session_maker() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def signup(db: Database, service: AccountService, email: str = EMAIL, **kw: Any) -> str:
    async with db.session_maker() as session, session.begin():
        return await service.signup(session, email=email, password=PASSWORD, **kw)


async def confirmed_account(db: Database, service: AccountService, email: str = EMAIL) -> str:
    await signup(db, service, email)
    code = await last_code_for(db, rules.normalize_email(email))
    async with db.session_maker() as session, session.begin():
        got = await service.confirm(session, email=email, code=code)
    assert got.account_id is not None
    return got.account_id


async def last_code_for(db: Database, address: str) -> str:
    rows = [r for r in await mails(db, "confirm_code") if r.to == address]
    return str(rows[-1].context["code"])


async def run(db: Database, fn: Any, *args: Any, **kw: Any) -> Any:
    """Call `fn(session, ...)` in a transaction of its own."""
    async with db.session_maker() as session, session.begin():
        return await fn(session, *args, **kw)


async def login(db: Database, service: AccountService, password: str = PASSWORD, **kw: Any) -> Any:
    kw.setdefault("email", EMAIL)
    return await run(db, service.login, password=password, **kw)


# --- sign-up -------------------------------------------------------------------------------


@BOTH
async def test_sign_up_adds_the_account_its_grant_and_its_code_in_one_go(
    db: Database, service: AccountService
) -> None:
    assert await signup(db, service, first_name=" Ann ", newsletter=True) == ADDRESS

    row = await row_of(db)
    assert (row.first_name, row.newsletter, row.role, row.confirmed_at) == (
        "Ann",
        True,
        "user",
        None,
    )
    assert row.password_hash is not None and row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash
    [mail] = await mails(db)
    assert (mail.to, mail.template) == (ADDRESS, "confirm_code")
    code = mail.context["code"]
    async with db.session_maker() as session:
        assert (await credits.balance(session, row.id)).balance == 100
        stored = await session.get(EmailCodeRow, (row.id, "confirm"))
        assert stored is not None and code not in stored.code_hash  # only a keyed digest
    account = await run(db, get_account, row.id)
    assert account is not None and not account.confirmed and account.email == ADDRESS


async def test_sign_up_with_a_known_address_changes_nothing_and_tells_its_owner(
    db: Database, service: AccountService
) -> None:
    await signup(db, service)
    before = await row_of(db)

    again = await signup(db, service, "  ANN.smith@example.COM ", first_name="Mallory")

    assert again == ADDRESS  # the same answer as a new address
    after = await row_of(db)
    assert (after.id, after.password_hash, after.first_name) == (
        before.id,
        before.password_hash,
        before.first_name,
    )
    assert sorted(m.template for m in await mails(db)) == ["account_exists", "confirm_code"]
    assert await count(db, LedgerEntryRow) == 1  # no second grant
    # and it cannot be used to flood the owner's mailbox
    for _ in range(5):
        await signup(db, service)
    assert len(await mails(db, "account_exists")) == 3


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("ann@example.com", "password123", "password"),
        ("ann@example.com", "short", "password"),
        ("ann@example.com", "x" * 100_000, "password"),
        ("ann@example.com", "abcdefghijk\x00", "password"),
        ("not an address", PASSWORD, "email"),
        ("аnn@example.com", PASSWORD, "email"),  # Cyrillic а
        ("ann@example.com\nBcc: x@evil.com", PASSWORD, "email"),
        ("ann@example.com\x00", PASSWORD, "email"),
        ("x" * 10_000 + "@example.com", PASSWORD, "email"),
    ],
)
async def test_sign_up_refuses_what_an_account_cannot_have(
    db: Database, service: AccountService, email: str, password: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await run(db, service.signup, email=email, password=password)
    assert refused.value.field == field and refused.value.message
    assert await count(db, AccountRow) == 0
    assert await mails(db) == []


async def test_a_look_alike_address_never_reaches_the_real_account(
    db: Database, service: AccountService
) -> None:
    await confirmed_account(db, service, "admin@example.com")
    for look_alike in ("аdmin@example.com", "ａdmin@example.com", "admin@exаmple.com"):
        assert (await login(db, service, email=look_alike)).status == "invalid"
        assert await run(db, find_account, look_alike) is None


# --- the confirmation code ------------------------------------------------------------------


@BOTH
async def test_the_right_code_confirms_the_account_once(
    db: Database, service: AccountService
) -> None:
    await signup(db, service)
    code = await last_code(db)

    got = await run(db, service.confirm, email=EMAIL, code=f" {code[:3]} {code[3:]} ")

    assert got.outcome is CodeOutcome.ACCEPTED and got.account_id == (await row_of(db)).id
    assert (await row_of(db)).confirmed_at == T0
    again = await run(db, service.confirm, email=EMAIL, code=code)
    assert (again.outcome, again.account_id) == (CodeOutcome.WRONG, None)


@BOTH
async def test_racing_entries_of_the_right_code_confirm_once(
    db: Database, service: AccountService
) -> None:
    await signup(db, service)
    code = await last_code(db)

    got = await asyncio.gather(
        *(run(db, service.confirm, email=EMAIL, code=code) for _ in range(6))
    )

    assert [g.outcome for g in got].count(CodeOutcome.ACCEPTED) == 1
    assert (await row_of(db)).confirmed_at == T0


@BOTH
async def test_a_flood_of_parallel_guesses_gets_five_of_them_judged(
    db: Database, service: AccountService
) -> None:
    await signup(db, service)
    code = await last_code(db)
    guesses = [f"{(int(code) + n) % 1_000_000:06d}" for n in range(1, 13)]

    got = await asyncio.gather(
        *(run(db, service.confirm, email=EMAIL, code=guess) for guess in guesses)
    )

    outcomes = [g.outcome for g in got]
    assert outcomes.count(CodeOutcome.WRONG) == 4  # judged one after the other
    assert outcomes.count(CodeOutcome.VOIDED) == 8
    assert (await run(db, service.confirm, email=EMAIL, code=code)).outcome is CodeOutcome.VOIDED


async def test_five_wrong_codes_void_it(db: Database, service: AccountService) -> None:
    await signup(db, service)
    code = await last_code(db)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    outcomes = [(await run(db, service.confirm, email=EMAIL, code=wrong)).outcome for _ in range(5)]

    assert outcomes == [CodeOutcome.WRONG] * 4 + [CodeOutcome.VOIDED]
    assert (await run(db, service.confirm, email=EMAIL, code=code)).outcome is CodeOutcome.VOIDED
    assert (await row_of(db)).confirmed_at is None


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", "0" * 10_000])
async def test_malformed_codes_count_as_wrong(
    db: Database, service: AccountService, typed: str
) -> None:
    await signup(db, service)
    got = await run(db, service.confirm, email=EMAIL, code=typed)
    assert (got.outcome, got.attempts_left) == (CodeOutcome.WRONG, 4)


async def test_a_code_expires_after_15_minutes(
    db: Database, service: AccountService, clock: Clock
) -> None:
    await signup(db, service)
    code = await last_code(db)
    clock.advance(minutes=15)
    assert (await run(db, service.confirm, email=EMAIL, code=code)).outcome is CodeOutcome.EXPIRED
    assert (await row_of(db)).confirmed_at is None


async def test_unknown_addresses_look_like_wrong_codes(
    db: Database, service: AccountService
) -> None:
    await signup(db, service)
    code = await last_code(db)
    unknown = await run(db, service.confirm, email="bob@example.com", code=code)
    wrong = await run(db, service.confirm, email=EMAIL, code=f"{(int(code) + 1) % 10**6:06d}")
    assert unknown == wrong


async def test_a_code_is_resent_60_s_apart_at_most_5_times_and_replaces_the_old_one(
    db: Database, service: AccountService, clock: Clock
) -> None:
    await signup(db, service)
    first = await last_code(db)

    clock.advance(seconds=30)
    soon = await run(db, service.resend_code, email=EMAIL)
    assert (soon.allowed, soon.retry_after) == (False, 30)
    for _ in range(5):
        clock.advance(seconds=60)
        assert (await run(db, service.resend_code, email=EMAIL)).allowed
    clock.advance(seconds=60)
    refused = await run(db, service.resend_code, email=EMAIL)
    assert not refused.allowed and refused.retry_after > 0
    assert len(await mails(db, "confirm_code")) == 6

    latest = await last_code(db)
    if latest != first:  # one in a million they are the same digits
        got = await run(db, service.confirm, email=EMAIL, code=first)
        assert got.outcome is CodeOutcome.WRONG
    assert (
        await run(db, service.confirm, email=EMAIL, code=latest)
    ).outcome is CodeOutcome.ACCEPTED


async def test_spent_resends_and_a_dead_code_renew_a_day_after_the_last_mail(
    db: Database, service: AccountService, clock: Clock
) -> None:
    """All 5 resends used, the last code voided by wrong entries and then expired: the owner
    is told when to ask again, and a day after the last mail gets a code that works."""
    await signup(db, service)
    for _ in range(rules.CODE_MAX_RESENDS):
        clock.advance(seconds=60)
        assert (await run(db, service.resend_code, email=EMAIL)).allowed
    code = await last_code(db)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(rules.CODE_MAX_WRONG):
        await run(db, service.confirm, email=EMAIL, code=wrong)
    voided = await run(db, service.confirm, email=EMAIL, code=code)
    assert voided.outcome is CodeOutcome.VOIDED
    clock.advance(minutes=15)
    expired = await run(db, service.confirm, email=EMAIL, code=code)
    assert expired.outcome is CodeOutcome.VOIDED  # voided stays voided, expired or not
    day = int(rules.CODE_SENDS_RESET.total_seconds())
    refused = await run(db, service.resend_code, email=EMAIL)
    assert (refused.allowed, refused.spent) == (False, True)
    assert refused.retry_after == day - 15 * 60
    clock.advance(seconds=refused.retry_after - 1)
    again = await run(db, service.resend_code, email=EMAIL)  # refusals move nothing
    assert (again.allowed, again.spent, again.retry_after) == (False, True, 1)
    assert len(await mails(db, "confirm_code")) == 1 + rules.CODE_MAX_RESENDS

    clock.advance(seconds=1)
    renewed = await run(db, service.resend_code, email=EMAIL)
    assert (renewed.allowed, renewed.sends) == (True, 1)
    assert len(await mails(db, "confirm_code")) == 2 + rules.CODE_MAX_RESENDS
    fresh = await last_code(db)
    assert (await run(db, service.confirm, email=EMAIL, code=fresh)).outcome is (
        CodeOutcome.ACCEPTED
    )
    assert (await row_of(db)).confirmed_at is not None


async def test_resending_to_an_unknown_address_says_the_same_and_sends_nothing(
    db: Database, service: AccountService
) -> None:
    got = await run(db, service.resend_code, email="nobody@example.com")
    assert got.allowed
    assert await mails(db) == []


# --- signing in ---------------------------------------------------------------------------------


async def test_sign_in_with_the_password(db: Database, service: AccountService) -> None:
    await signup(db, service)  # not confirmed yet: may sign in, not validate
    got = await login(db, service, email=" ANN.SMITH@example.com")
    assert got.status == "ok" and got.account is not None and not got.account.confirmed
    assert (await login(db, service, "wrong password!")).status == "invalid"
    assert (await login(db, service, email="bob@example.com")).status == "invalid"
    assert (await login(db, service, "x" * 1_000_000)).status == "invalid"
    assert (await login(db, service, PASSWORD + "\x00")).status == "invalid"


async def test_a_disabled_account_cannot_sign_in(db: Database, service: AccountService) -> None:
    account_id = await confirmed_account(db, service)
    await run(db, service.set_disabled, account_id, True)
    assert (await login(db, service)).status == "disabled"
    assert (await login(db, service, "wrong password!")).status == "invalid"  # tells nothing
    await run(db, service.set_disabled, account_id, False)
    assert (await login(db, service)).status == "ok"


@BOTH
async def test_five_failures_lock_the_address_for_15_minutes(
    db: Database, service: AccountService, clock: Clock
) -> None:
    await signup(db, service)
    for _ in range(5):
        assert (await login(db, service, "wrong password!")).status == "invalid"

    locked = await login(db, service)  # even the right password
    assert locked.status == "throttled" and 0 < locked.retry_after <= 15 * 60
    # an unknown address is throttled the same way (nothing to tell them apart)
    for _ in range(5):
        await login(db, service, email="bob@example.com")
    assert (await login(db, service, email="bob@example.com")).status == "throttled"

    clock.advance(seconds=locked.retry_after)
    assert (await login(db, service)).status == "ok"


@BOTH
async def test_parallel_guesses_of_a_password_get_five_tries(
    db: Database, service: AccountService
) -> None:
    await signup(db, service)

    got = await asyncio.gather(*(login(db, service, f"guess number {n}") for n in range(10)))

    statuses = sorted(g.status for g in got)
    assert statuses == ["invalid"] * 5 + ["throttled"] * 5


async def test_a_success_clears_the_failures(db: Database, service: AccountService) -> None:
    await signup(db, service)
    for _ in range(4):
        await login(db, service, "wrong password!")
    assert (await login(db, service)).status == "ok"
    for _ in range(4):
        await login(db, service, "wrong password!")
    assert (await login(db, service)).status == "ok"


async def test_an_old_hash_is_upgraded_at_sign_in(db: Database, clock: Clock) -> None:
    weak = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)
    keys = AccountKeys.from_secret("k")
    old = AccountService(hasher=weak, keys=keys, public_url="", free_credits=0, clock=clock)
    await signup(db, old)
    stronger = PasswordHasher(time_cost=2, memory_cost=256, parallelism=1)
    new = AccountService(hasher=stronger, keys=keys, public_url="", free_credits=0, clock=clock)

    assert (await login(db, new)).status == "ok"

    upgraded = (await row_of(db)).password_hash
    assert upgraded is not None and "m=256,t=2,p=1" in upgraded
    assert (await login(db, new)).status == "ok"


# --- TOTP -------------------------------------------------------------------------------------


async def totp_on(
    db: Database, service: AccountService, clock: Clock
) -> tuple[str, str, list[str]]:
    """A confirmed account with TOTP on: (account id, secret, recovery codes)."""
    account_id = await confirmed_account(db, service)
    setup = await run(db, service.start_totp, account_id)
    assert setup.uri.startswith("otpauth://totp/") and setup.secret in setup.uri
    codes = await run(db, service.enable_totp, account_id, pyotp.TOTP(setup.secret).at(clock.now))
    assert codes is not None
    clock.advance(seconds=30)  # the enabling step is used
    return account_id, setup.secret, codes


async def test_enabling_totp_needs_a_code_of_the_new_secret(
    db: Database, service: AccountService, clock: Clock
) -> None:
    account_id = await confirmed_account(db, service)
    setup = await run(db, service.start_totp, account_id)

    totp = pyotp.TOTP(setup.secret)
    near = {totp.at(clock.now + timedelta(seconds=30 * d)) for d in (-1, 0, 1)}
    wrong = next(c for c in (f"{n:06d}" for n in range(4)) if c not in near)
    for typed in (wrong, "", "abcdef", "1" * 10_000):
        assert await run(db, service.enable_totp, account_id, typed) is None
    assert not (await row_of(db)).totp_enabled

    codes = await run(db, service.enable_totp, account_id, pyotp.TOTP(setup.secret).at(clock.now))

    assert codes is not None and len(codes) == 10
    row = await row_of(db)
    assert row.totp_enabled and row.totp_secret is not None
    assert setup.secret not in row.totp_secret  # encrypted at rest
    assert service.keys.decrypt(row.totp_secret) == setup.secret
    with pytest.raises(InvalidTokenError):  # another secret key cannot read it
        AccountKeys.from_secret("another key").decrypt(row.totp_secret)
    assert len(await mails(db, "two_factor_enabled")) == 1
    assert await count(db, RecoveryCodeRow) == 10


@BOTH
async def test_sign_in_with_totp_and_no_replay(
    db: Database, service: AccountService, clock: Clock
) -> None:
    account_id, secret, _ = await totp_on(db, service, clock)
    totp = pyotp.TOTP(secret)

    first = await login(db, service)
    assert first.status == "second_factor" and first.account.id == account_id
    code = totp.at(clock.now)
    passed = await run(db, service.verify_second_factor, account_id=account_id, code=code)
    assert passed.ok and passed.account is not None and passed.account.id == account_id
    # the same code again, within its window: refused
    replay = await run(db, service.verify_second_factor, account_id=account_id, code=code)
    assert not replay.ok and replay.account is None
    # the previous step's code is within the drift but older than the one used: refused
    older = totp.at(clock.now - timedelta(seconds=30))
    assert not (await run(db, service.verify_second_factor, account_id=account_id, code=older)).ok
    clock.advance(seconds=30)
    fresh = totp.at(clock.now)
    assert (await run(db, service.verify_second_factor, account_id=account_id, code=fresh)).ok


@BOTH
async def test_two_replicas_racing_with_one_code_let_one_in(
    db: Database, service: AccountService, clock: Clock
) -> None:
    account_id, secret, _ = await totp_on(db, service, clock)
    code = pyotp.TOTP(secret).at(clock.now)

    got = await asyncio.gather(
        *(run(db, service.verify_second_factor, account_id=account_id, code=code) for _ in range(6))
    )

    assert sum(outcome.ok for outcome in got) == 1


async def test_a_recovery_code_works_once(
    db: Database, service: AccountService, clock: Clock
) -> None:
    account_id, _, codes = await totp_on(db, service, clock)

    used = await run(
        db, service.verify_second_factor, account_id=account_id, code=f"  {codes[3].upper()} "
    )

    assert used.ok and used.used_recovery_code and used.recovery_codes_left == 9
    again = await run(db, service.verify_second_factor, account_id=account_id, code=codes[3])
    assert not again.ok
    assert (await run(db, service.verify_second_factor, account_id=account_id, code=codes[4])).ok


async def test_new_recovery_codes_void_the_old_ones(
    db: Database, service: AccountService, clock: Clock
) -> None:
    account_id, _, old = await totp_on(db, service, clock)
    new = await run(db, service.regenerate_recovery_codes, account_id)
    assert len(new) == 10 and not set(new) & set(old)
    assert not (await run(db, service.verify_second_factor, account_id=account_id, code=old[0])).ok
    assert (await run(db, service.verify_second_factor, account_id=account_id, code=new[0])).ok
    assert await run(db, service.recovery_codes_left, account_id) == 9


async def test_five_wrong_second_factors_throttle(
    db: Database, service: AccountService, clock: Clock
) -> None:
    account_id, secret, _ = await totp_on(db, service, clock)
    for _ in range(5):
        assert not (await run(db, service.verify_second_factor, account_id=account_id, code="1")).ok
    right = pyotp.TOTP(secret).at(clock.now)
    held = await run(db, service.verify_second_factor, account_id=account_id, code=right)
    assert not held.ok and held.retry_after > 0


async def test_disabling_totp_needs_a_current_code(
    db: Database, service: AccountService, clock: Clock
) -> None:
    account_id, secret, _ = await totp_on(db, service, clock)
    assert not await run(db, service.disable_totp, account_id, "123456x")
    assert (await row_of(db)).totp_enabled
    for _ in range(4):  # guessing is throttled: a fifth wrong code closes the door
        assert not await run(db, service.disable_totp, account_id, "000000x")
    right = pyotp.TOTP(secret).at(clock.now)
    assert not await run(db, service.disable_totp, account_id, right)
    clock.advance(minutes=15)

    assert await run(db, service.disable_totp, account_id, pyotp.TOTP(secret).at(clock.now))

    row = await row_of(db)
    assert (row.totp_enabled, row.totp_secret) == (False, None)
    assert await count(db, RecoveryCodeRow) == 0
    assert len(await mails(db, "two_factor_disabled")) == 1
    assert (await login(db, service)).status == "ok"


# --- passwords ----------------------------------------------------------------------------------


async def web_session(db: Database, account_id: str) -> str:
    async with db.session_maker() as session, session.begin():
        token, _ = await sessions.create(
            session, data={}, account_id=account_id, authenticated_at=T0, now=T0, max_age=3600
        )
    return sessions.hash_token(token)


async def live_sessions(db: Database, account_id: str) -> int:
    async with db.session_maker() as session:
        query = select(func.count()).where(
            WebSessionRow.account_id == account_id, WebSessionRow.expires_at > T0
        )
        return int((await session.execute(query)).scalar_one())


async def test_signing_out_everywhere_ends_every_session_and_mails_a_notice(
    db: Database, service: AccountService
) -> None:
    account_id = await confirmed_account(db, service)
    other_id = await confirmed_account(db, service, "someone.else@example.com")
    for _ in range(2):
        await web_session(db, account_id)
    await web_session(db, other_id)

    assert await run(db, service.sign_out_everywhere, account_id) == 2

    assert await live_sessions(db, account_id) == 0
    assert await live_sessions(db, other_id) == 1
    notices = await mails(db, "sessions_ended")
    assert [mail.to for mail in notices] == [rules.normalize_email(EMAIL)]


async def test_changing_the_password_ends_the_other_sessions(
    db: Database, service: AccountService
) -> None:
    account_id = await confirmed_account(db, service)
    mine = await web_session(db, account_id)
    await web_session(db, account_id)
    wrong = await run(
        db,
        service.change_password,
        account_id=account_id,
        current_password="not the password",
        new_password="a brand new secret",
    )
    assert wrong == PasswordChange("wrong_password")
    with pytest.raises(InvalidInput):
        await run(
            db,
            service.change_password,
            account_id=account_id,
            current_password=PASSWORD,
            new_password="1234567890",
        )

    changed = await run(
        db,
        service.change_password,
        account_id=account_id,
        current_password=PASSWORD,
        new_password="a brand new secret",
        keep_session_hash=mine,
    )

    assert changed == PasswordChange("changed", sessions_ended=1)
    assert await live_sessions(db, account_id) == 1
    assert (await login(db, service)).status == "invalid"
    assert (await login(db, service, "a brand new secret")).status == "ok"
    assert len(await mails(db, "password_changed")) == 1


async def test_the_password_again_is_the_reauthentication(
    db: Database, service: AccountService
) -> None:
    account_id = await confirmed_account(db, service)
    assert (await run(db, service.check_password, account_id, PASSWORD)).ok
    for _ in range(5):
        wrong = await run(db, service.check_password, account_id, "guess guess guess")
        assert not wrong.ok and wrong.retry_after == 0
    throttled = await run(db, service.check_password, account_id, PASSWORD)
    assert not throttled.ok and throttled.retry_after > 0  # refused unchecked


async def test_wrong_current_passwords_count_as_failed_sign_ins(
    db: Database, service: AccountService, clock: Clock
) -> None:
    """Review S1: a taken-over session guessing the current password on the password page
    is locked out as /login would be, and /login with the right password is refused too."""
    account_id = await confirmed_account(db, service)
    for _ in range(5):
        got = await run(
            db,
            service.change_password,
            account_id=account_id,
            current_password="guess guess guess",
            new_password="a brand new secret",
        )
        assert got.status == "wrong_password"
    locked = await run(
        db,
        service.change_password,
        account_id=account_id,
        current_password=PASSWORD,
        new_password="a brand new secret",
    )
    assert locked.status == "throttled" and 0 < locked.retry_after <= 15 * 60
    assert (await login(db, service)).status == "throttled"
    assert (await run(db, service.check_password, account_id, PASSWORD)).retry_after > 0
    clock.advance(minutes=15)
    assert (await login(db, service)).status == "ok"


def token_of(mail: OutboxRow) -> str:
    link = urlsplit(mail.context["link"])
    assert (link.scheme, link.netloc, link.path) == ("https", "mailvet.example", "/reset-password")
    [token] = parse_qs(link.query)["token"]
    return str(token)


@BOTH
async def test_a_reset_link_sets_the_password_once_and_ends_every_session(
    db: Database, service: AccountService
) -> None:
    account_id = await confirmed_account(db, service)
    await web_session(db, account_id)
    await run(db, service.request_password_reset, email=EMAIL)
    [mail] = await mails(db, "password_reset")
    token = token_of(mail)
    assert mail.to == ADDRESS and await run(db, service.reset_token_usable, token)

    with pytest.raises(InvalidInput):  # a refused password leaves the link usable
        await run(db, service.reset_password, token=token, new_password="password123")
    assert await run(db, service.reset_token_usable, token)

    assert await run(db, service.reset_password, token=token, new_password="a new long secret") == (
        account_id
    )

    assert await live_sessions(db, account_id) == 0
    assert (await login(db, service, "a new long secret")).status == "ok"
    assert len(await mails(db, "password_changed")) == 1
    with pytest.raises(InvalidToken):
        await run(db, service.reset_password, token=token, new_password="yet another secret")
    assert not await run(db, service.reset_token_usable, token)


@BOTH
async def test_racing_uses_of_one_reset_link_set_one_password(
    db: Database, service: AccountService
) -> None:
    await confirmed_account(db, service)
    await run(db, service.request_password_reset, email=EMAIL)
    token = token_of((await mails(db, "password_reset"))[0])

    async def use(n: int) -> str | None:
        try:
            await run(db, service.reset_password, token=token, new_password=f"new secret no {n}")
        except InvalidToken:
            return None
        return f"new secret no {n}"

    won = [p for p in await asyncio.gather(*(use(n) for n in range(5))) if p]

    assert len(won) == 1
    assert (await login(db, service, won[0])).status == "ok"


async def test_forgot_password_answers_the_same_for_an_unknown_address(
    db: Database, service: AccountService
) -> None:
    await confirmed_account(db, service)
    before = len(await mails(db))
    assert await run(db, service.request_password_reset, email="bob@example.com") is None
    assert await run(db, service.request_password_reset, email="not an address\x00") is None
    assert len(await mails(db)) == before


async def test_a_reset_link_expires_and_forged_ones_do_nothing(
    db: Database, service: AccountService, clock: Clock
) -> None:
    await confirmed_account(db, service)
    await run(db, service.request_password_reset, email=EMAIL)
    token = token_of((await mails(db, "password_reset"))[-1])
    for forged in ("", token[:-1], token + "x", "a" * 100_000, "\x00"):
        with pytest.raises(InvalidToken):
            await run(db, service.reset_password, token=forged, new_password="a new long secret")
    clock.advance(hours=1)
    with pytest.raises(InvalidToken):
        await run(db, service.reset_password, token=token, new_password="a new long secret")
    assert (await login(db, service)).status == "ok"


async def test_a_used_link_voids_the_others_and_mails_are_bounded(
    db: Database, service: AccountService
) -> None:
    await confirmed_account(db, service)
    for _ in range(5):
        await run(db, service.request_password_reset, email=EMAIL)
    resets = await mails(db, "password_reset")
    assert len(resets) == 3  # per address per hour
    first, second = token_of(resets[0]), token_of(resets[1])
    await run(db, service.reset_password, token=second, new_password="a new long secret")
    with pytest.raises(InvalidToken):
        await run(db, service.reset_password, token=first, new_password="another long secret")


# --- deleting an account ----------------------------------------------------------------------


async def test_deleting_an_account_removes_its_files_and_sessions_and_keeps_its_job_rows(
    db: Database, service: AccountService, storage: MemoryStorage
) -> None:
    account_id = await confirmed_account(db, service)
    other_id = await confirmed_account(db, service, "bob@example.com")
    jobs = {account_id: uuid.uuid4().hex, other_id: uuid.uuid4().hex}
    async with db.session_maker() as session, session.begin():
        for owner, job_id in jobs.items():
            session.add(
                JobRow(
                    id=job_id,
                    filename="customers.csv",
                    checks="smtp",
                    status="completed",
                    owner=owner,
                    rows_total=3,
                    rows_done=3,
                )
            )
    for job_id in jobs.values():
        await storage.put_bytes(object_keys.uploaded(job_id), b"a@b.com\n")
        await storage.put_bytes(object_keys.chunk_results(job_id, 0), b"x")
        await storage.put_bytes(object_keys.completed(job_id), b"result")
        await storage.put_bytes(object_keys.summary(job_id), b"{}")
    await storage.put_bytes(f"avatars/{account_id}", b"png")
    await run(db, service.set_avatar_key, account_id, f"avatars/{account_id}")
    await web_session(db, account_id)
    await run(db, service.start_totp, account_id)

    await run(db, service.delete_account, account_id)

    assert await run(db, get_account, account_id) is None
    assert await live_sessions(db, account_id) == 0
    assert all(other_id in key or jobs[other_id] in key for key in storage.objects)
    assert len(storage.objects) == 4  # the other account's files stay
    async with db.session_maker() as session:
        mine = await session.get(JobRow, jobs[account_id])
        theirs = await session.get(JobRow, jobs[other_id])
        assert mine is not None and (mine.filename, mine.rows_total) == ("", 3)
        assert theirs is not None and theirs.filename == "customers.csv"
        codes = select(func.count()).select_from(EmailCodeRow)
        assert (await session.execute(codes)).scalar_one() == 0
    # the address is free again
    await signup(db, service)
    assert (await row_of(db)).id != account_id


# --- Google -----------------------------------------------------------------------------------


async def google(db: Database, service: AccountService, **claims: Any) -> Any:
    claims.setdefault("sub", "google-1")
    claims.setdefault("email", EMAIL)
    claims.setdefault("email_verified", True)
    return await run(db, service.sign_in_with_google, GoogleIdentity(**claims))


async def test_google_creates_a_confirmed_account_without_password(
    db: Database, service: AccountService
) -> None:
    got = await google(
        db, service, picture="https://lh3.example/p.png", given_name="Ann", family_name="Smith"
    )

    assert got.status == "ok" and got.created and got.account is not None
    account = got.account
    assert (account.confirmed, account.has_password, account.google_sub) == (
        True,
        False,
        "google-1",
    )
    assert account.google_picture == "https://lh3.example/p.png"
    async with db.session_maker() as session:
        assert (await credits.balance(session, account.id)).balance == 100
    assert (await login(db, service)).status == "invalid"  # no password to sign in with
    again = await google(db, service, email="changed@example.com")
    assert again.status == "ok" and not again.created and again.account.id == account.id


async def test_google_never_creates_or_links_through_an_unverified_address(
    db: Database, service: AccountService
) -> None:
    assert (await google(db, service, email_verified=False)).status == "email_not_verified"
    assert await count(db, AccountRow) == 0
    await confirmed_account(db, service)
    got = await google(db, service, email_verified=False)
    assert got.status == "email_not_verified" and got.account is None
    assert (await row_of(db)).google_sub is None


async def test_a_linked_google_identity_signs_in_whatever_email_verified_says(
    db: Database, service: AccountService
) -> None:
    created = await google(db, service)
    assert created.status == "ok" and created.account is not None
    got = await google(db, service, email_verified=False)
    assert got.status == "ok" and not got.created and not got.linked
    assert got.account.id == created.account.id


async def test_google_links_a_confirmed_account_by_its_verified_address(
    db: Database, service: AccountService
) -> None:
    account_id = await confirmed_account(db, service)
    got = await google(db, service, email=" ann.SMITH@example.com")
    assert got.status == "ok" and got.linked and got.account.id == account_id
    assert (await login(db, service)).status == "ok"  # the password still works
    # another Google identity with the same address does not take the account over
    other = await google(db, service, sub="google-2")
    assert other.account is None and (await row_of(db)).google_sub == "google-1"


async def test_linking_an_unconfirmed_account_drops_what_the_sign_up_set(
    db: Database, service: AccountService
) -> None:
    await signup(db, service)  # someone signed up with Ann's address and a password of theirs
    row = await row_of(db)
    squatter = await web_session(db, row.id)

    got = await google(db, service)

    assert got.status == "ok" and got.linked and got.account.confirmed
    assert not got.account.has_password
    assert (await login(db, service)).status == "invalid"
    assert await run(db, sessions.load, squatter, now=T0) is None


async def test_a_checked_google_identity_signs_in(db: Database, service: AccountService) -> None:
    identity = GoogleIdentity(
        sub="g-7", email="Ann.Smith@example.com", email_verified=True, given_name="Ann"
    )
    got = await run(db, service.sign_in_with_google, identity)
    assert got.status == "ok" and got.created and got.account.first_name == "Ann"
    assert got.account.google_picture is None


async def test_google_sign_in_still_asks_for_the_second_factor(
    db: Database, service: AccountService, clock: Clock
) -> None:
    await totp_on(db, service, clock)
    await google(db, service)
    assert (await google(db, service)).status == "second_factor"


async def test_google_refuses_odd_claims(db: Database, service: AccountService) -> None:
    assert (await google(db, service, sub="")).status == "email_not_verified"
    assert (await google(db, service, sub="x" * 300)).status == "email_not_verified"
    assert (await google(db, service, email="аnn@example.com")).status == "invalid_email"
    got = await google(db, service, picture="javascript:alert(1)")
    assert got.status == "ok" and got.account.google_picture is None


# --- the CLI's and admins' use cases ------------------------------------------------------------


async def test_create_account_starts_with_exactly_the_credits_given(db: Database) -> None:
    async def create(session: AsyncSession, email: str, credits_: int | None) -> str:
        account = await create_account(
            session,
            email=email,
            password=PASSWORD,
            admin=True,
            confirmed=True,
            credits=credits_,
            free_credits=100,
            hasher=HASHER,
            now=T0,
        )
        assert account.is_admin and account.confirmed
        return account.id

    five = await run(db, create, "five@example.com", 5)
    zero = await run(db, create, "zero@example.com", 0)
    granted = await run(db, create, "new@example.com", None)
    async with db.session_maker() as session:
        assert (await credits.balance(session, five)).balance == 5
        assert (await credits.balance(session, zero)).balance == 0
        assert (await credits.balance(session, granted)).balance == 100
        kinds = select(LedgerEntryRow.kind).where(LedgerEntryRow.account_id == five)
        assert list((await session.execute(kinds)).scalars()) == [EntryKind.ADMIN_ADJUSTMENT]
    with pytest.raises(AccountExists):
        await run(db, create, "FIVE@example.com", 1)
    with pytest.raises(InvalidInput):
        await run(db, create, "neg@example.com", -1)


async def test_admins_find_accounts_by_address_or_name(
    db: Database, service: AccountService, clock: Clock
) -> None:
    await signup(db, service, first_name="Ann")
    clock.advance(seconds=1)
    await signup(db, service, "bob@example.com", last_name="Builder_100%")

    async def found(query: str) -> list[str]:
        return [a.email for a in await run(db, search_accounts, query)]

    assert await found("") == ["bob@example.com", ADDRESS]
    assert await found("ANN") == [ADDRESS]
    assert await found("builder") == ["bob@example.com"]
    assert await found("_100%") == ["bob@example.com"]
    assert await found("%") == ["bob@example.com"]  # a literal percent sign, not a wildcard
    assert await found("zzz") == []


async def test_profile_changes_keep_names_sane(db: Database, service: AccountService) -> None:
    account_id = await confirmed_account(db, service)
    got = await run(
        db,
        service.update_profile,
        account_id,
        first_name='"><img src=x onerror=alert(1)>\x00',
        last_name="x" * 1000,
        newsletter=True,
    )
    assert got.first_name == '"><img src=x onerror=alert(1)>'  # kept; templates escape it
    assert len(got.last_name) == rules.MAX_NAME_LENGTH and got.newsletter


async def test_the_dummy_hash_of_an_unknown_address_is_made_off_the_event_loop(
    db: Database, clock: Clock
) -> None:
    class Watched(PasswordHasher):
        threads: list[int] = []

        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            self.threads.append(threading.get_ident())
            return super().hash(password, salt=salt)

    watched = Watched.from_parameters(argon2.profiles.CHEAPEST)
    assert isinstance(watched, Watched)
    service = AccountService(
        hasher=watched,
        keys=AccountKeys.from_secret("test secret key"),
        public_url="https://mailvet.example/",
        free_credits=0,
        clock=clock,
    )
    got = await run(db, service.login, email="nobody@example.com", password=PASSWORD)
    assert got.status == "invalid"
    assert watched.threads and threading.get_ident() not in watched.threads
