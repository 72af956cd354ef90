"""Stripe's events carried out once, in the transaction of their effects
(services/billing_events.py), on the migrated SQLite database and on PostgreSQL (the
concurrent replay), with the Payments port in memory (the refetch of an out-of-order event).

The events are domain BillingEvents, as the webhook hands them over once their signature is
verified (tests/web/test_stripe_webhook.py sends them signed, over HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import argon2
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, update

from mailvet.adapters.db.billing_models import (
    BillingAccountRow,
    BillingMailKeyRow,
    BillingPackRow,
    BillingTierRow,
    StripeEventRow,
)
from mailvet.adapters.db.database import Database
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.adapters.payments.memory import MemoryPayments
from mailvet.domain.billing import BillingEvent, EventKind
from mailvet.domain.credits import EntryKind
from mailvet.domain.payments import Charge, CheckoutSession, Invoice, PaymentsError, Subscription
from mailvet.services import credits
from mailvet.services.billing_events import Deferred, Outcome, process_event
from tests.billing_helpers import billed_account, tier_row
from tests.pg import migrated_database, opened

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HASHER = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)
PRICE = "price_pro"
CUSTOMER = "cus_ann"
START = 1_800_000_000
MONTH = 30 * 86_400


async def an_account(db: Database, email: str = "ann@example.com", customer: str = CUSTOMER) -> str:
    async with db.unit_of_work(write=True) as session:
        return await billed_account(session, email=email, customer=customer, hasher=HASHER, now=T0)


async def a_tier(db: Database, price: str = PRICE, credits_: int = 5_000) -> None:
    async with db.unit_of_work(write=True) as session:
        session.add(tier_row(price=price, monthly_credits=credits_, now=T0))


def event(ident: str, kind: EventKind, obj: object, created: int = START) -> BillingEvent:
    return BillingEvent(id=ident, kind=kind, created=created, object=obj)  # type: ignore[arg-type]


def pack_paid(account_id: str, session: str = "cs_1", credits_: int = 1_000) -> CheckoutSession:
    return CheckoutSession(
        id=session,
        mode="payment",
        status="complete",
        payment_status="paid",
        customer=CUSTOMER,
        client_reference_id=account_id,
        payment_intent=f"pi_{session}",
        amount_total=credits_ // 100,
        currency="usd",
        metadata={"credits": str(credits_)},
    )


def sub(status: str = "active", **extra: object) -> Subscription:
    fields: dict[str, object] = {
        "id": "sub_1",
        "customer": CUSTOMER,
        "status": status,
        "price": PRICE,
        "current_period_start": START,
        "current_period_end": START + MONTH,
        **extra,
    }
    return Subscription(**fields)  # type: ignore[arg-type]


def invoice(ident: str, period_start: int = START, price: str = PRICE) -> Invoice:
    return Invoice(
        id=ident,
        customer=CUSTOMER,
        status="paid",
        subscription="sub_1",
        price=price,
        amount_due=2_900,
        amount_paid=2_900,
        currency="usd",
        created=period_start,
        period_start=period_start,
        period_end=period_start + MONTH,
    )


async def balance(db: Database, account_id: str) -> int:
    async with db.session_maker() as session:
        return (await credits.balance(session, account_id)).balance


async def count(db: Database, model: type, **where: object) -> int:
    async with db.session_maker() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return (await session.execute(query)).scalar_one()


async def billing_row(db: Database, account_id: str) -> BillingAccountRow:
    async with db.session_maker() as session:
        row = await session.get(BillingAccountRow, account_id)
        assert row is not None
        return row


async def mail_keys(db: Database, account_id: str) -> set[str]:
    async with db.session_maker() as session:
        query = select(BillingMailKeyRow.key).where(BillingMailKeyRow.account_id == account_id)
        return set((await session.execute(query)).scalars())


async def test_a_paid_pack_adds_its_credits_once_and_a_replay_changes_nothing(db: Database) -> None:
    account = await an_account(db)
    payments = MemoryPayments()
    paid = event("evt_1", EventKind.CHECKOUT_COMPLETED, pack_paid(account))
    done = await process_event(db, payments, paid, now=T0)
    assert done.outcome is Outcome.APPLIED and done.account_id == account
    assert await balance(db, account) == 1_000
    again = await process_event(db, payments, paid, now=T0)
    assert again.outcome is Outcome.REPLAY
    # the same session told again under another event id: the ledger key holds
    other = event("evt_2", EventKind.CHECKOUT_COMPLETED, pack_paid(account))
    assert (await process_event(db, payments, other, now=T0)).outcome is Outcome.APPLIED
    assert await balance(db, account) == 1_000
    assert await count(db, LedgerEntryRow, kind=EntryKind.PURCHASE.value) == 1
    assert await count(db, BillingPackRow, account_id=account) == 1
    assert await count(db, StripeEventRow) == 2


async def test_an_unpaid_or_unlabelled_checkout_adds_nothing(db: Database) -> None:
    account = await an_account(db)
    unpaid = CheckoutSession(
        id="cs_u",
        mode="payment",
        payment_status="unpaid",
        client_reference_id=account,
        metadata={"credits": "1000"},
    )
    bare = CheckoutSession(
        id="cs_b", mode="payment", payment_status="paid", client_reference_id=account
    )
    for ident, obj in (("evt_u", unpaid), ("evt_b", bare)):
        done = await process_event(
            db, MemoryPayments(), event(ident, EventKind.CHECKOUT_COMPLETED, obj), now=T0
        )
        assert done.outcome is Outcome.IGNORED
    assert await balance(db, account) == 0


async def test_a_subscription_grants_its_tiers_credits_once_per_period(db: Database) -> None:
    account = await an_account(db)
    await a_tier(db)
    payments = MemoryPayments()
    created = event("evt_s", EventKind.SUBSCRIPTION_CREATED, sub())
    assert (await process_event(db, payments, created, now=T0)).outcome is Outcome.APPLIED
    row = await billing_row(db, account)
    assert (row.tier, row.status, row.subscription_id) == ("pro", "active", "sub_1")
    assert row.current_period_end == START + MONTH
    await process_event(
        db, payments, event("evt_i1", EventKind.INVOICE_PAID, invoice("in_1")), now=T0
    )
    # a second invoice for the same period (paid again after a retry): no second grant
    await process_event(
        db, payments, event("evt_i2", EventKind.INVOICE_PAID, invoice("in_2")), now=T0
    )
    assert await balance(db, account) == 5_000
    await process_event(
        db,
        payments,
        event("evt_i3", EventKind.INVOICE_PAID, invoice("in_3", START + MONTH)),
        now=T0,
    )
    assert await balance(db, account) == 10_000
    assert await count(db, LedgerEntryRow, kind=EntryKind.SUBSCRIPTION_GRANT.value) == 2
    assert "subscription-confirmed:sub_1:pro" in await mail_keys(db, account)


async def test_an_invoice_of_a_price_not_synced_is_deferred_and_stores_nothing(
    db: Database,
) -> None:
    account = await an_account(db)
    paid = event("evt_i", EventKind.INVOICE_PAID, invoice("in_1"))
    with pytest.raises(Deferred, match="billing sync"):
        await process_event(db, MemoryPayments(), paid, now=T0)
    assert await count(db, StripeEventRow) == 0  # Stripe sends it again: not a replay then
    await a_tier(db)  # `mailvet billing sync` ran
    assert (await process_event(db, MemoryPayments(), paid, now=T0)).outcome is Outcome.APPLIED
    assert await balance(db, account) == 5_000


async def test_a_tier_whose_price_was_archived_still_grants_its_subscribers(
    db: Database,
) -> None:
    """`mailvet billing sync` keeps a tier whose price is archived, inactive: no new
    subscriptions, but those who have it keep being granted its credits."""
    account = await an_account(db)
    await a_tier(db)
    async with db.unit_of_work(write=True) as session:
        await session.execute(update(BillingTierRow).values(active=False))
    paid = event("evt_i", EventKind.INVOICE_PAID, invoice("in_1"))
    assert (await process_event(db, MemoryPayments(), paid, now=T0)).outcome is Outcome.APPLIED
    assert await balance(db, account) == 5_000


async def test_an_older_subscription_event_converges_to_stripes_state(db: Database) -> None:
    account = await an_account(db)
    await a_tier(db)
    payments = MemoryPayments()
    ends = START + MONTH
    cancelling = sub(cancel_at_period_end=True)
    payments.subscriptions["sub_1"] = cancelling  # Stripe's state now
    newer = event("evt_new", EventKind.SUBSCRIPTION_UPDATED, cancelling, created=START + 200)
    await process_event(db, payments, newer, now=T0)
    older = event("evt_old", EventKind.SUBSCRIPTION_CREATED, sub(), created=START + 100)
    done = await process_event(db, payments, older, now=T0)
    assert done.outcome is Outcome.APPLIED
    row = await billing_row(db, account)
    assert (row.status, row.cancel_at, row.version) == ("active", ends, START + 200)
    keys = await mail_keys(db, account)
    assert f"subscription-cancelled:sub_1:{ends}" in keys
    assert await count(db, OutboxRow) == len(keys)  # each mail once


class RacingPayments(MemoryPayments):
    """Stripe asked for a subscription answers what it holds, then `between` runs (`times`
    times at most): another replica committing an event between this one's fetch and its
    next round."""

    def __init__(self, between: Callable[[int], Awaitable[None]], times: int = 1) -> None:
        super().__init__()
        self.between = between
        self.times = times
        self.asked = 0

    async def subscription(self, subscription_id: str) -> Subscription:
        got = await super().subscription(subscription_id)
        self.asked += 1
        if self.asked <= self.times:
            await self.between(self.asked)
        return got


async def test_a_fetch_older_than_an_event_stored_meanwhile_is_asked_again(db: Database) -> None:
    """Two replicas: this one fetches the subscription for an older event; the other commits
    a newer event (a cancellation) before this one's second round. What was fetched is older
    than that: applied, it would undo the cancellation, stamped as the newest. The stored
    subscription moved since the first round, so Stripe is asked again."""
    account = await an_account(db)
    await a_tier(db)
    ends = START + MONTH
    cancelling = sub(cancel_at_period_end=True)

    async def cancelled_meanwhile(_: int) -> None:
        payments.subscriptions["sub_1"] = cancelling
        newest = event("evt_cancel", EventKind.SUBSCRIPTION_UPDATED, cancelling, START + 300)
        await process_event(db, MemoryPayments(), newest, now=T0)

    payments = RacingPayments(cancelled_meanwhile)
    payments.subscriptions["sub_1"] = sub()
    newer = event("evt_new", EventKind.SUBSCRIPTION_UPDATED, sub(), created=START + 200)
    await process_event(db, payments, newer, now=T0)
    older = event("evt_old", EventKind.SUBSCRIPTION_CREATED, sub(), created=START + 100)
    done = await process_event(db, payments, older, now=T0)
    assert done.outcome is Outcome.APPLIED
    row = await billing_row(db, account)
    assert (row.status, row.cancel_at, row.version) == ("active", ends, START + 300)
    assert payments.asked == 2  # the first answer was stale by the second round
    assert f"subscription-cancelled:sub_1:{ends}" in await mail_keys(db, account)


async def test_a_subscription_that_keeps_changing_while_stripe_is_asked_is_deferred(
    db: Database,
) -> None:
    account = await an_account(db)
    await a_tier(db)

    async def another_event(n: int) -> None:
        told = sub(cancel_at=START + n)
        newest = event(f"evt_{n}", EventKind.SUBSCRIPTION_UPDATED, told, START + 300 + n)
        await process_event(db, MemoryPayments(), newest, now=T0)

    payments = RacingPayments(another_event, times=10)
    payments.subscriptions["sub_1"] = sub()
    newer = event("evt_new", EventKind.SUBSCRIPTION_UPDATED, sub(), created=START + 200)
    await process_event(db, MemoryPayments(), newer, now=T0)
    older = event("evt_old", EventKind.SUBSCRIPTION_CREATED, sub(), created=START + 100)
    with pytest.raises(Deferred, match="kept changing"):
        await process_event(db, payments, older, now=T0)
    assert payments.asked == 3
    assert await count(db, StripeEventRow, id="evt_old") == 0  # Stripe sends it again
    row = await billing_row(db, account)
    assert (row.cancel_at, row.version) == (START + 3, START + 303)  # the last one told


async def test_an_older_event_is_not_applied_when_stripe_cannot_be_asked(db: Database) -> None:
    account = await an_account(db)
    await a_tier(db)
    payments = MemoryPayments()
    created = event("evt_c", EventKind.SUBSCRIPTION_CREATED, sub(), created=START)
    await process_event(db, payments, created, now=T0)
    deleted = sub("canceled", ended_at=START + 300)
    await process_event(
        db,
        payments,
        event("evt_d", EventKind.SUBSCRIPTION_DELETED, deleted, created=START + 300),
        now=T0,
    )
    payments.fail_with = PaymentsError("Stripe is down")
    older = event("evt_u", EventKind.SUBSCRIPTION_UPDATED, sub(), created=START + 100)
    with pytest.raises(PaymentsError):
        await process_event(db, payments, older, now=T0)
    row = await billing_row(db, account)
    assert (row.tier, row.status) == ("free", "canceled")
    assert await count(db, StripeEventRow, id="evt_u") == 0
    assert "subscription-ended:sub_1" in await mail_keys(db, account)


async def test_a_failed_payment_makes_the_plan_past_due_and_mails_once(db: Database) -> None:
    account = await an_account(db)
    await a_tier(db)
    payments = MemoryPayments()
    await process_event(db, payments, event("evt_s", EventKind.SUBSCRIPTION_CREATED, sub()), now=T0)
    failed = invoice("in_f")
    for ident in ("evt_f1", "evt_f2"):  # Stripe's retries of the charge fail again
        await process_event(
            db, payments, event(ident, EventKind.INVOICE_PAYMENT_FAILED, failed, START + 10), now=T0
        )
    assert (await billing_row(db, account)).status == "past_due"
    assert "payment-failed:in_f" in await mail_keys(db, account)
    assert await count(db, OutboxRow) == 2  # confirmed, and the failure once


async def test_a_refund_takes_back_what_is_left_and_records_the_shortfall(db: Database) -> None:
    account = await an_account(db)
    payments = MemoryPayments()
    await process_event(
        db, payments, event("evt_p", EventKind.CHECKOUT_COMPLETED, pack_paid(account)), now=T0
    )
    async with db.unit_of_work(write=True) as session:
        await credits.reserve_for_job(session, account, "job1", 900, T0)
    half = Charge(id="ch_1", amount=1_000, amount_refunded=500, payment_intent="pi_cs_1")
    refund = event("evt_r1", EventKind.CHARGE_REFUNDED, half)
    # 500 due, 100 left while the job holds 900: how much it uses is not known yet
    with pytest.raises(Deferred, match="jobs are running"):
        await process_event(db, payments, refund, now=T0)
    assert await count(db, LedgerEntryRow, kind=EntryKind.PAYMENT_REFUND.value) == 0
    async with db.unit_of_work(write=True) as session:
        await credits.settle_job(session, "job1", charged=700, now=T0)  # 200 given back
    await process_event(db, payments, refund, now=T0)  # Stripe's retry
    assert await balance(db, account) == 0  # 500 due, 300 left: 300 taken, 200 short
    assert (await billing_row(db, account)).shortfall == 200
    full = Charge(
        id="ch_1", amount=1_000, amount_refunded=1_000, refunded=True, payment_intent="pi_cs_1"
    )
    await process_event(db, payments, event("evt_r2", EventKind.CHARGE_REFUNDED, full), now=T0)
    await process_event(db, payments, event("evt_r3", EventKind.CHARGE_REFUNDED, full), now=T0)
    assert await balance(db, account) == 0
    assert (await billing_row(db, account)).shortfall == 700  # all 1,000 back: 300 taken
    async with db.session_maker() as session:
        pack = await session.get(BillingPackRow, "cs_1")
        assert pack is not None and pack.removed == 1_000
    assert await count(db, LedgerEntryRow, kind=EntryKind.PAYMENT_REFUND.value) == 2


async def test_a_refund_before_its_checkout_is_deferred(db: Database) -> None:
    await an_account(db)
    early = Charge(
        id="ch_9",
        amount=1_000,
        amount_refunded=1_000,
        refunded=True,
        payment_intent="pi_x",
        customer=CUSTOMER,
    )
    with pytest.raises(Deferred):
        await process_event(
            db, MemoryPayments(), event("evt_r", EventKind.CHARGE_REFUNDED, early), now=T0
        )
    assert await count(db, StripeEventRow) == 0


async def test_an_event_of_no_account_is_recorded_as_ignored(db: Database) -> None:
    await an_account(db)
    stranger = Subscription(id="sub_x", customer="cus_stranger", status="active", price=PRICE)
    done = await process_event(
        db, MemoryPayments(), event("evt_x", EventKind.SUBSCRIPTION_CREATED, stranger), now=T0
    )
    assert done.outcome is Outcome.IGNORED and done.account_id is None
    again = await process_event(
        db, MemoryPayments(), event("evt_x", EventKind.SUBSCRIPTION_CREATED, stranger), now=T0
    )
    assert again.outcome is Outcome.REPLAY


# --- PostgreSQL: two replicas get the same event at once ----------------------------------


@pytest.fixture
async def pg() -> AsyncIterator[Database]:
    with migrated_database("billing") as url:
        async with opened(url) as database:
            yield database


@pytest.mark.integration
async def test_the_same_event_twice_at_once_is_carried_out_once_on_postgres(pg: Database) -> None:
    account = await an_account(pg)
    payments = MemoryPayments()
    paid = event("evt_1", EventKind.CHECKOUT_COMPLETED, pack_paid(account))
    other = event("evt_2", EventKind.CHECKOUT_COMPLETED, pack_paid(account, "cs_2", 2_000))
    got = await asyncio.gather(
        *(process_event(pg, payments, e, now=T0) for e in (paid, paid, other, other, paid))
    )
    outcomes = sorted(done.outcome.value for done in got)
    assert outcomes == ["applied", "applied", "replay", "replay", "replay"]
    assert await balance(pg, account) == 3_000
    assert await count(pg, LedgerEntryRow, kind=EntryKind.PURCHASE.value) == 2
