"""Credits running low (services/low_credits.py) on the migrated embedded database: one mail
when the balance falls under a tenth of the last top-up, once per top-up; the states made
with the ledger's own use cases (services/credits.py), never by writing its tables."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

import argon2
import pytest
import structlog
from argon2 import PasswordHasher
from sqlalchemy import select

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.adapters.mail.log import plain_text
from mailvet.adapters.mail.memory import MemoryMailer
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.domain.credits import EntryKind, Reservation
from mailvet.services import credits, low_credits
from mailvet.services.accounts import create_account
from mailvet.services.jobs import run_retention
from mailvet.services.outbox import OutboxSender
from mailvet.settings import MailerSettings, Settings, WebSettings
from tests.fakes import T0, MovingClock
from tests.waiting import until

pytestmark = pytest.mark.unit

HASHER = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)
SETTINGS = Settings(
    web=WebSettings(public_url="https://app.mailvet.example"),
    mailer=MailerSettings(backend="memory", sender="mailvet <no-reply@mailvet.example>"),
)
ANN = "ann.lee@example.com"


async def account(db: Database, email: str = ANN, *, signup: int = 0) -> str:
    async with db.unit_of_work(write=True) as session:
        made = await create_account(
            session,
            email=email,
            password=None,
            confirmed=True,
            free_credits=signup,
            hasher=HASHER,
            now=T0,
        )
    return made.id


async def topup(db: Database, account_id: str, amount: int, kind: EntryKind) -> None:
    async with db.unit_of_work(write=True) as session:
        added = await credits.grant(
            session, account_id, amount, kind=kind, now=T0, key=uuid.uuid4().hex
        )
    assert added


async def spend(db: Database, account_id: str, amount: int) -> None:
    """A job of `amount` credits accepted (its reservation taken)."""
    async with db.unit_of_work(write=True) as session:
        got = await credits.reserve_for_job(session, account_id, uuid.uuid4().hex, amount, T0)
    assert isinstance(got, Reservation)


async def check_one(db: Database, account_id: str) -> None:
    """One single address checked: one credit (the API's path)."""
    async with db.unit_of_work(write=True) as session:
        charged = await credits.charge_singles(
            session, [credits.SingleCharge(account_id, uuid.uuid4().hex, T0)]
        )
    assert isinstance(charged[0], int)


async def warn(db: Database) -> int:
    return await low_credits.sweep(db, now=T0 + timedelta(minutes=1))


async def warnings_to(db: Database, email: str = ANN) -> list[str]:
    """The text of the low-credits mails the outbox delivers to `email` now (those queued
    since the last call)."""
    mailer = MemoryMailer()
    await OutboxSender(db, mailer, SETTINGS, MovingClock(T0 + timedelta(minutes=2))).run_once()
    sent = [m for m in mailer.to(email) if m["Subject"] == "Your mailvet credits are running low"]
    return [" ".join(plain_text(m).split()) for m in sent]


async def low_rows(db: Database) -> list[str]:
    async with db.session_maker() as session:
        keys = await session.scalars(
            select(OutboxRow.key).where(OutboxRow.template == "low_credits")
        )
        return sorted(key or "" for key in keys)


async def test_a_purchase_spent_under_a_tenth_warns_once(db: Database) -> None:
    ann = await account(db)
    await topup(db, ann, 1_000, EntryKind.PURCHASE)
    await spend(db, ann, 900)  # 100 left: exactly a tenth, not under it
    assert await warn(db) == 0

    await check_one(db, ann)  # 99 left
    assert await warn(db) == 1
    (text,) = await warnings_to(db)
    assert "down to 99 credits, under a tenth of the 1,000 credits" in text
    assert "https://app.mailvet.example/app/billing" in text

    await spend(db, ann, 50)  # spending more warns no more
    await check_one(db, ann)
    assert await warn(db) == 0
    assert await warnings_to(db) == []
    assert len(await low_rows(db)) == 1


async def test_a_refund_taking_the_credits_back_does_not_warn(db: Database) -> None:
    """A pack refunded (its credits taken back): the customer asked for it, no "running
    low" mail; a new purchase spent down later warns as usual."""
    ann = await account(db)
    await topup(db, ann, 1_000, EntryKind.PURCHASE)
    async with db.unit_of_work(write=True) as session:
        assert await credits.take_back(
            session, ann, 1_000, key="stripe-refund:ch_1:1000", reason="refund", now=T0
        )
    assert await warn(db) == 0
    assert await warnings_to(db) == []
    await topup(db, ann, 1_000, EntryKind.PURCHASE)
    await spend(db, ann, 950)
    assert await warn(db) == 1


async def test_a_new_topup_then_a_fall_warns_again(db: Database) -> None:
    ann = await account(db)
    await topup(db, ann, 1_000, EntryKind.PURCHASE)
    await spend(db, ann, 901)
    assert await warn(db) == 1

    await topup(db, ann, 5_000, EntryKind.SUBSCRIPTION_GRANT)  # 5,099: the line is now 500
    assert await warn(db) == 0
    await spend(db, ann, 4_600)  # 499
    assert await warn(db) == 1
    assert await warn(db) == 0
    texts = await warnings_to(db)
    assert len(texts) == 2
    assert "down to 499 credits, under a tenth of the 5,000 credits" in texts[1]
    keys = await low_rows(db)
    assert len(set(keys)) == 2 and all(k.startswith(f"low-credits:{ann}:") for k in keys)


async def test_a_balance_at_exactly_a_tenth_does_not_warn(db: Database) -> None:
    ann = await account(db)
    await topup(db, ann, 2_000, EntryKind.SUBSCRIPTION_GRANT)
    await spend(db, ann, 1_800)  # 200 = 2,000 / 10
    assert await warn(db) == 0
    assert await low_rows(db) == []


async def test_signup_grants_and_admin_adjustments_are_no_topup(db: Database) -> None:
    ann = await account(db, signup=1_000)  # the sign-up grant
    await spend(db, ann, 950)
    assert await warn(db) == 0  # 50 of 1,000 signed up for: no top-up to measure against

    async with db.unit_of_work(write=True) as session:
        refused = await credits.adjust(
            session, ann, 5_000, actor="admin@mailvet.example", reason="goodwill", now=T0
        )
    assert refused is None
    await spend(db, ann, 5_000)
    assert await warn(db) == 0

    # an adjustment after a purchase does not move the line the purchase drew
    await topup(db, ann, 1_000, EntryKind.PURCHASE)  # 1,050
    async with db.unit_of_work(write=True) as session:
        await credits.adjust(
            session, ann, 100_000, actor="admin@mailvet.example", reason="trial", now=T0
        )
    await spend(db, ann, 100_960)  # 90 left: under a tenth of the purchase's 1,000
    assert await warn(db) == 1
    (text,) = await warnings_to(db)
    assert "under a tenth of the 1,000 credits" in text


async def test_a_batch_is_bounded_and_the_sweep_goes_on_until_done(db: Database) -> None:
    people = [await account(db, f"p{i}@example.com") for i in range(5)]
    for person in people:
        await topup(db, person, 1_000, EntryKind.PURCHASE)
        await spend(db, person, 950)

    async with db.unit_of_work(write=True) as session:
        assert await low_credits.queue_warnings(session, now=T0, limit=2) == 2
    assert await low_credits.sweep(db, now=T0, limit=2) == 3
    assert await low_credits.sweep(db, now=T0, limit=2) == 0
    assert len(await low_rows(db)) == 5


async def test_a_gone_account_is_marked_and_not_looked_at_again(db: Database) -> None:
    ghost = uuid.uuid4().hex  # a balance row whose account was deleted
    await topup(db, ghost, 1_000, EntryKind.PURCHASE)
    await spend(db, ghost, 950)

    async with db.unit_of_work(write=True) as session:
        assert await low_credits.queue_warnings(session, now=T0, limit=1) == 0
    ann = await account(db)
    await topup(db, ann, 1_000, EntryKind.PURCHASE)
    await spend(db, ann, 950)
    async with db.unit_of_work(write=True) as session:  # the ghost no longer takes the batch
        assert await low_credits.queue_warnings(session, now=T0, limit=1) == 1
    assert await low_rows(db) == [
        low_credits.warning_key(ann, 1)
    ]  # its purchase is its first entry


async def test_the_web_roles_task_sends_the_warning_within_its_recovery_round(
    db: Database,
) -> None:
    ann = await account(db)
    await topup(db, ann, 1_000, EntryKind.PURCHASE)
    await spend(db, ann, 990)
    clock = MovingClock(T0)
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(
            run_retention(
                db, MemoryStorage(), retention_days=30, clock=clock, every=3600, recover_every=60
            )
        )
        try:
            await until(lambda: any(e["event"] == "low_credits_swept" for e in logs))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    swept = [e for e in logs if e["event"] == "low_credits_swept"]
    assert swept[0]["queued"] == 1
    assert await low_rows(db) == [low_credits.warning_key(ann, 1)]
