"""Stripe's webhook over HTTP (issue 10 §2): POST /billing/stripe/webhook on the SaaS app with
MAILVET_BILLING=stripe, only the webhook's router as area, the Payments port in memory (what
a refetch asks for), bodies in the JSON shapes Stripe sends (tests/stripe_events.py) signed
with the endpoint's secret. Each event type's effect is read back from the database; replays,
out-of-order pairs, every kind of refusal (signature, time, body, size) and a deferred event
that Stripe's retry applies. tests/service/test_billing_events.py tests the same service on
domain events; these go through the signature, the JSON and the endpoint's answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.db.billing_models import (
    BillingAccountRow,
    BillingMailKeyRow,
    BillingPackRow,
    BillingTierRow,
    StripeEventRow,
)
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.adapters.payments.memory import MemoryPayments
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import build_deps
from mailvet.domain.credits import EntryKind
from mailvet.domain.payments import Subscription
from mailvet.services import credits
from mailvet.settings import load_settings
from mailvet.web.app import create_app
from mailvet.web.billing.webhook import BODY_LIMIT, WEBHOOK_PATH, stripe_webhook_router
from mailvet.web.context import build_web_context
from tests import stripe_events as se
from tests.billing_helpers import billed_account, tier_row
from tests.fakes import FakeProber, FakeResolver, WatchedJobs
from tests.web.shell_helpers import HTTPS, Clock, cheap_hasher, look

pytestmark = pytest.mark.pipeline

SECRET = "whsec_test_mailvet_webhook"
API_KEY = "sk_test_x"
STRIPE_ENV = {
    "MAILVET_BILLING": "stripe",
    "MAILVET_STRIPE_API_KEY": API_KEY,
    "MAILVET_STRIPE_WEBHOOK_SECRET": SECRET,
}
ANN = "ann.webhook@example.com"
CUSTOMER = "cus_ann"
PRICE = "price_pro"
MONTH = 30 * 86_400


@dataclass
class Hook:
    """The app under test, its database's URL, the fake Stripe it asks, and Ann's account."""

    client: AsyncTestClient[Litestar]
    url: str
    payments: MemoryPayments
    now: int  # the app's clock (real time: Stripe's library checks the signature on it)
    account: str = ""

    async def post(
        self, payload: se.Json | bytes, *, at: int | None = None, secret: str = SECRET
    ) -> Any:
        body, headers = se.signed(payload, secret, at=self.now if at is None else at)
        return await self.client.post(WEBHOOK_PATH, content=body, headers=headers)

    async def raw(self, body: bytes, headers: Mapping[str, str]) -> Any:
        return await self.client.post(WEBHOOK_PATH, content=body, headers=dict(headers))


@asynccontextmanager
async def webhook_app(tmp_path: Path, env: Mapping[str, str] | None = None) -> AsyncIterator[Hook]:
    settings = load_settings(
        {"MAILVET_DATA_DIR": str(tmp_path), "MAILVET_PUBLIC_URL": HTTPS, **(env or STRIPE_ENV)}
    )
    deps = await build_deps(
        settings,
        jobs=WatchedJobs(),
        storage=MemoryStorage(),
        bus=MemoryBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )
    payments = MemoryPayments()
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        web = await build_web_context(
            settings,
            hasher=cheap_hasher(),
            clock=Clock(now=now),
            payments=payments if settings.billing.stripe else None,
        )
        try:
            app = create_app(deps, web=web, areas=[stripe_webhook_router()])
            async with AsyncTestClient(app, base_url=HTTPS) as client:
                yield Hook(client, settings.database, payments, int(now.timestamp()))
        finally:
            await web.close()
    finally:
        await deps.close()


async def ann_with_a_tier(hook: Hook, *, tier: bool = True, customer: str | None = CUSTOMER) -> str:
    """Ann's account (no credits), her billing row naming her Stripe customer, the Pro tier."""
    now = datetime.fromtimestamp(hook.now, UTC)
    async with look(hook.url) as db, db.unit_of_work(write=True) as session:
        account = await billed_account(
            session, email=ANN, customer=customer, hasher=cheap_hasher(), now=now
        )
        if tier:
            session.add(a_tier_row(now))
    hook.account = account
    return account


def a_tier_row(now: datetime) -> BillingTierRow:
    return tier_row(price=PRICE, now=now)


async def balance(hook: Hook) -> int:
    async with look(hook.url) as db, db.session_maker() as session:
        return (await credits.balance(session, hook.account)).balance


async def count(hook: Hook, model: type, **where: object) -> int:
    async with look(hook.url) as db, db.session_maker() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int((await session.execute(query)).scalar_one())


async def billing_row(hook: Hook) -> BillingAccountRow:
    async with look(hook.url) as db, db.session_maker() as session:
        row = await session.get(BillingAccountRow, hook.account)
        assert row is not None
        return row


async def mails(hook: Hook) -> dict[str, str]:
    """The outbox's keyed mails: key -> template (and each key in billing_mail_keys)."""
    async with look(hook.url) as db, db.session_maker() as session:
        rows = (
            await session.execute(select(OutboxRow).where(OutboxRow.key.is_not(None)))
        ).scalars()
        queued = {str(r.key): r.template for r in rows}
        keys = set(
            (
                await session.execute(
                    select(BillingMailKeyRow.key).where(
                        BillingMailKeyRow.account_id == hook.account
                    )
                )
            ).scalars()
        )
    assert keys == set(queued)
    return queued


async def stored(hook: Hook) -> dict[str, str]:
    """stripe_events: id -> outcome."""
    async with look(hook.url) as db, db.session_maker() as session:
        rows = (await session.execute(select(StripeEventRow))).scalars()
        return {r.id: r.outcome for r in rows}


async def nothing_stored(hook: Hook) -> None:
    assert await stored(hook) == {}
    assert await balance(hook) == 0
    assert await count(hook, BillingPackRow) == 0
    assert await mails(hook) == {}


def pack_event(
    hook: Hook, ident: str = "evt_pack", session: str = "cs_1", n: int = 1_000
) -> se.Json:
    obj = se.checkout_session(session, account_id=hook.account, customer=CUSTOMER, credits=n)
    return se.event(ident, "checkout.session.completed", obj, created=hook.now)


def sub_json(hook: Hook, status: str = "active", **extra: Any) -> se.Json:
    start = hook.now - 100
    return se.subscription(
        "sub_1",
        customer=CUSTOMER,
        price=PRICE,
        status=status,
        period_start=start,
        period_end=start + MONTH,
        **extra,
    )


def sub_event(hook: Hook, ident: str, kind: str, obj: se.Json, created: int) -> se.Json:
    return se.event(ident, f"customer.subscription.{kind}", obj, created=created)


def invoice_event(
    hook: Hook, ident: str, inv: str, *, start: int, kind: str = "invoice.paid"
) -> se.Json:
    obj = se.invoice(
        inv,
        customer=CUSTOMER,
        subscription="sub_1",
        price=PRICE,
        period_start=start,
        period_end=start + MONTH,
        status="paid" if kind == "invoice.paid" else "open",
    )
    return se.event(ident, kind, obj, created=start + 5)


# --- every event type -------------------------------------------------------------------------


async def test_a_pack_adds_its_credits_once_and_a_replay_answers_200_changing_nothing(
    tmp_path: Path,
) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        payload = pack_event(hook, n=2_000)
        first = await hook.post(payload)
        assert first.status_code == 200, first.text
        assert first.json()["outcome"] == "applied"
        assert await balance(hook) == 2_000
        assert await count(hook, LedgerEntryRow, kind=EntryKind.PURCHASE.value) == 1
        async with look(hook.url) as db, db.session_maker() as session:
            pack = await session.get(BillingPackRow, "cs_1")
            assert pack is not None
            assert (pack.account_id, pack.credits, pack.payment_intent) == (
                hook.account,
                2_000,
                "pi_cs_1",
            )
        replay = await hook.post(payload)  # the same body, the same id
        assert replay.status_code == 200
        assert replay.json()["outcome"] == "replay"
        assert await balance(hook) == 2_000
        # the same session under a new event id: its ledger key holds
        again = await hook.post(pack_event(hook, "evt_pack_2", n=2_000))
        assert again.status_code == 200
        assert await balance(hook) == 2_000
        assert await count(hook, LedgerEntryRow, kind=EntryKind.PURCHASE.value) == 1
        assert await stored(hook) == {"evt_pack": "applied", "evt_pack_2": "applied"}


async def test_a_pack_paid_by_a_delayed_method_adds_its_credits_when_the_payment_succeeds(
    tmp_path: Path,
) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        unpaid = se.checkout_session(
            "cs_d", account_id=hook.account, customer=CUSTOMER, payment_status="unpaid"
        )
        completed = se.event("evt_c", "checkout.session.completed", unpaid, created=hook.now)
        assert (await hook.post(completed)).json()["outcome"] == "ignored"
        assert await balance(hook) == 0
        paid = {**unpaid, "payment_status": "paid"}
        kind = "checkout.session.async_payment_succeeded"
        got = await hook.post(se.event("evt_s", kind, paid, created=hook.now + 1))
        assert got.status_code == 200 and got.json()["outcome"] == "applied", got.text
        assert await balance(hook) == 1_000
        # told again under another event id: the pack's ledger key holds
        await hook.post(se.event("evt_s2", kind, paid, created=hook.now + 1))
        assert await balance(hook) == 1_000
        other = se.checkout_session(
            "cs_f", account_id=hook.account, customer=CUSTOMER, payment_status="unpaid"
        )
        kind = "checkout.session.async_payment_failed"
        got = await hook.post(se.event("evt_f", kind, other, created=hook.now + 2))
        assert got.status_code == 200 and got.json()["outcome"] == "ignored", got.text
        assert await balance(hook) == 1_000
        assert await count(hook, LedgerEntryRow, kind=EntryKind.PURCHASE.value) == 1
        assert await count(hook, BillingPackRow) == 1


async def test_a_subscription_checkout_links_the_customer(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook, customer=None)
        obj = se.checkout_session(
            "cs_sub",
            account_id=hook.account,
            customer="cus_new",
            mode="subscription",
            subscription="sub_1",
        )
        got = await hook.post(
            se.event("evt_cs", "checkout.session.completed", obj, created=hook.now)
        )
        assert got.status_code == 200, got.text
        assert (await billing_row(hook)).customer == "cus_new"
        assert await balance(hook) == 0  # the subscription's invoice grants, not the checkout
        assert await count(hook, BillingPackRow) == 0


async def test_a_subscriptions_life_created_paid_failed_cancelled_deleted(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        t = hook.now - 1_000
        start = hook.now - 100
        created = await hook.post(sub_event(hook, "evt_c", "created", sub_json(hook), t))
        assert created.status_code == 200, created.text
        row = await billing_row(hook)
        assert (row.tier, row.status, row.subscription_id) == ("pro", "active", "sub_1")
        assert row.current_period_end == start + MONTH  # read from items.data[0]
        assert await mails(hook) == {"subscription-confirmed:sub_1:pro": "subscription_confirmed"}

        paid = await hook.post(invoice_event(hook, "evt_i1", "in_1", start=start))
        assert paid.status_code == 200, paid.text
        assert await balance(hook) == 5_000
        assert await count(hook, LedgerEntryRow, kind=EntryKind.SUBSCRIPTION_GRANT.value) == 1
        # another invoice of the same period (paid after a retry): no second grant
        assert (
            await hook.post(invoice_event(hook, "evt_i2", "in_2", start=start))
        ).status_code == 200
        assert await balance(hook) == 5_000
        # the next period's invoice
        await hook.post(invoice_event(hook, "evt_i3", "in_3", start=start + MONTH))
        assert await balance(hook) == 10_000

        failed = invoice_event(
            hook, "evt_f", "in_4", start=start + 2 * MONTH, kind="invoice.payment_failed"
        )
        failed["created"] = t + 10
        assert (await hook.post(failed)).status_code == 200
        assert (await billing_row(hook)).status == "past_due"
        assert (await mails(hook))["payment-failed:in_4"] == "payment_failed"
        assert await balance(hook) == 10_000

        ends = start + MONTH
        cancelling = sub_json(hook, cancel_at_period_end=True)
        got = await hook.post(sub_event(hook, "evt_u", "updated", cancelling, t + 20))
        assert got.status_code == 200, got.text
        row = await billing_row(hook)
        assert (row.tier, row.status, row.cancel_at) == ("pro", "active", ends)
        assert (await mails(hook))[
            f"subscription-cancelled:sub_1:{ends}"
        ] == "subscription_cancelled"

        gone = sub_json(hook, "canceled", ended_at=ends)
        got = await hook.post(sub_event(hook, "evt_d", "deleted", gone, t + 30))
        assert got.status_code == 200, got.text
        row = await billing_row(hook)
        assert (row.tier, row.status, row.cancel_at) == ("free", "canceled", None)
        assert (await mails(hook))["subscription-ended:sub_1"] == "subscription_ended"
        assert await balance(hook) == 10_000  # the periods paid keep their credits
        assert len(await mails(hook)) == 4  # each mail once


async def test_a_refund_takes_back_the_packs_share_cumulatively(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        await hook.post(pack_event(hook, n=1_000))
        half = se.charge("ch_1", amount=1_000, amount_refunded=500, payment_intent="pi_cs_1")
        got = await hook.post(se.event("evt_r1", "charge.refunded", half, created=hook.now))
        assert got.status_code == 200, got.text
        assert await balance(hook) == 500
        full = se.charge("ch_1", amount=1_000, amount_refunded=1_000, payment_intent="pi_cs_1")
        full_event = se.event("evt_r2", "charge.refunded", full, created=hook.now)
        assert (await hook.post(full_event)).status_code == 200
        assert (await hook.post(full_event)).json()["outcome"] == "replay"
        assert await balance(hook) == 0
        assert await count(hook, LedgerEntryRow, kind=EntryKind.PAYMENT_REFUND.value) == 2
        assert (await billing_row(hook)).shortfall == 0
        async with look(hook.url) as db, db.session_maker() as session:
            pack = await session.get(BillingPackRow, "cs_1")
            assert pack is not None and pack.removed == 1_000


async def test_a_subscriptions_charge_refunded_is_deferred_an_hour_then_ignored(
    tmp_path: Path,
) -> None:
    """Stripe's current charge names no invoice: a subscription's charge refunded is no pack
    known. Deferred while it may be a pack whose checkout comes later; Stripe's retry an hour
    on is recorded as ignored (200), not deferred for ever. An older API's charge naming its
    invoice is ignored at once."""
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        await hook.post(invoice_event(hook, "evt_i", "in_1", start=hook.now - 100))
        charge = se.charge(
            "ch_sub",
            amount=2_900,
            amount_refunded=2_900,
            payment_intent="pi_sub",
            customer=CUSTOMER,
        )
        assert "invoice" not in charge
        recent = se.event("evt_r", "charge.refunded", charge, created=hook.now - 60)
        got = await hook.post(recent)
        assert got.status_code == 503, got.text
        assert "evt_r" not in await stored(hook)
        old = se.event("evt_r", "charge.refunded", charge, created=hook.now - 3_600)
        got = await hook.post(old)  # Stripe's retry, an hour after the refund
        assert got.status_code == 200, got.text
        assert got.json()["outcome"] == "ignored"
        named = se.charge(
            "ch_old", amount=2_900, amount_refunded=2_900, payment_intent="pi_old",
            customer=CUSTOMER, invoice="in_1",
        )  # fmt: skip
        got = await hook.post(se.event("evt_n", "charge.refunded", named, created=hook.now))
        assert got.status_code == 200 and got.json()["outcome"] == "ignored", got.text
        assert await balance(hook) == 5_000  # the period's credits stay
        assert await stored(hook) == {"evt_i": "applied", "evt_r": "ignored", "evt_n": "ignored"}


# --- out of order ----------------------------------------------------------------------------


async def test_a_deletion_then_an_older_update_converges_to_stripes_subscription(
    tmp_path: Path,
) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        t = hook.now - 1_000
        await hook.post(sub_event(hook, "evt_c", "created", sub_json(hook), t))
        gone = sub_json(hook, "canceled", ended_at=t + 300)
        hook.payments.subscriptions["sub_1"] = Subscription(
            id="sub_1", customer=CUSTOMER, status="canceled", price=PRICE, ended_at=t + 300
        )
        assert (
            await hook.post(sub_event(hook, "evt_d", "deleted", gone, t + 300))
        ).status_code == 200
        older = await hook.post(sub_event(hook, "evt_u", "updated", sub_json(hook), t + 100))
        assert older.status_code == 200, older.text
        row = await billing_row(hook)
        assert (row.tier, row.status, row.version) == ("free", "canceled", t + 300)
        assert "subscription-ended:sub_1" in await mails(hook)
        assert (await stored(hook))["evt_u"] == "applied"


async def test_an_invoice_paid_before_its_subscription_was_created(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        start = hook.now - 100
        paid = await hook.post(invoice_event(hook, "evt_i", "in_1", start=start))
        assert paid.status_code == 200, paid.text
        assert await balance(hook) == 5_000
        created = await hook.post(sub_event(hook, "evt_c", "created", sub_json(hook), start - 10))
        assert created.status_code == 200
        row = await billing_row(hook)
        assert (row.tier, row.status) == ("pro", "active")
        assert await balance(hook) == 5_000  # the period granted once
        assert await count(hook, LedgerEntryRow, kind=EntryKind.SUBSCRIPTION_GRANT.value) == 1


async def test_another_subscription_ending_leaves_the_one_that_goes_on(tmp_path: Path) -> None:
    """sub_2 replaces sub_1 (made on Stripe, then sub_1 cancelled): sub_1's end, newer than
    sub_2's start, neither frees the tier nor mails that the subscription ended."""
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        t = hook.now - 1_000
        await hook.post(sub_event(hook, "evt_c1", "created", sub_json(hook), t))
        second = {**sub_json(hook), "id": "sub_2"}
        await hook.post(sub_event(hook, "evt_c2", "created", second, t + 100))
        gone = sub_json(hook, "canceled", ended_at=t + 200)
        got = await hook.post(sub_event(hook, "evt_d1", "deleted", gone, t + 200))
        assert got.status_code == 200, got.text
        row = await billing_row(hook)
        assert (row.subscription_id, row.tier, row.status) == ("sub_2", "pro", "active")
        assert "subscription-ended:sub_1" not in await mails(hook)


async def test_a_replacing_subscription_told_after_the_old_ones_end_is_applied(
    tmp_path: Path,
) -> None:
    """sub_1's end arrives before sub_2's (older) creation: Stripe's sub_2 is asked for, and
    as it is active the account has it."""
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        t = hook.now - 1_000
        await hook.post(sub_event(hook, "evt_c1", "created", sub_json(hook), t))
        gone = sub_json(hook, "canceled", ended_at=t + 200)
        await hook.post(sub_event(hook, "evt_d1", "deleted", gone, t + 200))
        second = {**sub_json(hook), "id": "sub_2"}
        hook.payments.subscriptions["sub_2"] = Subscription(
            id="sub_2",
            customer=CUSTOMER,
            status="active",
            price=PRICE,
            current_period_end=hook.now - 100 + MONTH,
        )
        got = await hook.post(sub_event(hook, "evt_c2", "created", second, t + 100))
        assert got.status_code == 200, got.text
        row = await billing_row(hook)
        assert (row.subscription_id, row.tier, row.status) == ("sub_2", "pro", "active")
        assert "subscription-confirmed:sub_2:pro" in await mails(hook)
        # sub_1's end told again under another id, or an update of it older than its end:
        # nothing changes now
        again = await hook.post(sub_event(hook, "evt_d1b", "deleted", gone, t + 200))
        assert again.status_code == 200
        stale = await hook.post(sub_event(hook, "evt_u1", "updated", sub_json(hook), t + 150))
        assert stale.status_code == 200
        row = await billing_row(hook)
        assert (row.subscription_id, row.status, row.version) == ("sub_2", "active", t + 200)


# --- refusals ----------------------------------------------------------------------------------


async def test_bad_signatures_are_refused_and_store_nothing(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        payload = pack_event(hook)
        body, headers = se.signed(payload, SECRET, at=hook.now)
        tampered = body.replace(b'"1000"', b'"9000"')
        assert tampered != body
        cases: list[tuple[bytes, dict[str, str]]] = [
            se.signed(payload, "whsec_someone_else", at=hook.now),  # wrong secret
            (tampered, headers),  # the body changed after signing
            (body, {"content-type": "application/json"}),  # no header
            (body, {**headers, "stripe-signature": "garbage"}),
            (body, {**headers, "stripe-signature": f"t={hook.now},v1=00ff"}),
            (body, {**headers, "stripe-signature": "t=,v1="}),
        ]
        for sent, with_headers in cases:
            got = await hook.raw(sent, with_headers)
            assert got.status_code == 400, (with_headers, got.text)
        await nothing_stored(hook)


async def test_a_stale_or_future_timestamp_is_refused(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        payload = pack_event(hook)
        for at in (hook.now - 301, hook.now - 3_600, hook.now + 600):
            got = await hook.post(payload, at=at)
            assert got.status_code == 400, (at, got.text)
        await nothing_stored(hook)
        # within the tolerance both ways: accepted
        assert (await hook.post(payload, at=hook.now - 240)).status_code == 200
        assert await balance(hook) == 1_000


async def test_a_body_that_is_no_event_is_refused(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        no_object = pack_event(hook)
        no_object["data"] = {}
        huge_amount = pack_event(hook)
        huge_amount["data"]["object"]["amount_total"] = 10**30
        for body in (
            b"this is not json",
            b"\xff\xfe\x00not utf-8",
            se.body_of(no_object),
            se.body_of({"id": "evt_x", "type": "invoice.paid"}),  # no created, no data
            b"[1, 2]",  # JSON, but no object
            b'"an event"',
            b"null",
            b"123",
            se.body_of({**pack_event(hook), "created": 10**400}),  # no time
            se.body_of(huge_amount),  # no amount of Stripe's
        ):
            got = await hook.post(body)
            assert got.status_code == 400, (body[:20], got.text)
        await nothing_stored(hook)


async def test_a_body_over_512_kib_is_413(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        payload = pack_event(hook)
        payload["padding"] = "x" * BODY_LIMIT
        got = await hook.post(payload)
        assert got.status_code == 413
        await nothing_stored(hook)
        # just under the limit is read
        payload["padding"] = ""
        small = se.body_of(payload)
        payload["padding"] = "x" * (BODY_LIMIT - len(small) - 1)
        assert (await hook.post(payload)).status_code == 200


async def test_an_unhandled_type_answers_200_and_stores_nothing(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        customer = {"id": CUSTOMER, "object": "customer", "email": ANN}
        got = await hook.post(se.event("evt_cu", "customer.created", customer, created=hook.now))
        assert got.status_code == 200
        assert got.json()["outcome"] == "unhandled"
        await nothing_stored(hook)


async def test_billing_off_is_404(tmp_path: Path) -> None:
    async with webhook_app(tmp_path, {"MAILVET_BILLING": "off"}) as hook:
        await ann_with_a_tier(hook)
        got = await hook.post(pack_event(hook))
        assert got.status_code == 404
        await nothing_stored(hook)


async def test_a_deferred_event_is_503_then_its_retry_is_applied(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook, tier=False)  # `mailvet billing sync` has not run
        payload = invoice_event(hook, "evt_i", "in_1", start=hook.now - 100)
        got = await hook.post(payload)
        assert got.status_code == 503, got.text
        assert got.headers["retry-after"] == "60"
        await nothing_stored(hook)
        async with look(hook.url) as db, db.unit_of_work(write=True) as session:
            session.add(a_tier_row(datetime.fromtimestamp(hook.now, UTC)))
        retry = await hook.post(payload)  # Stripe sends the same event again
        assert retry.status_code == 200, retry.text
        assert retry.json()["outcome"] == "applied"
        assert await balance(hook) == 5_000
        assert await stored(hook) == {"evt_i": "applied"}


async def test_stripe_unreachable_for_a_refetch_is_503_and_stores_nothing(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        t = hook.now - 1_000
        await hook.post(sub_event(hook, "evt_c", "created", sub_json(hook), t + 200))
        older = sub_event(hook, "evt_u", "updated", sub_json(hook, cancel_at_period_end=True), t)
        # the refetch asks MemoryPayments.subscriptions, which holds nothing: Stripe's 404
        got = await hook.post(older)
        assert got.status_code == 503, got.text
        assert "evt_u" not in await stored(hook)


async def test_no_csrf_token_is_needed(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        assert not hook.client.cookies  # never visited a page: no CSRF cookie, no token
        got = await hook.post(pack_event(hook))
        assert got.status_code == 200, got.text


@pytest.mark.usefixtures("every_level")
async def test_no_address_or_key_is_logged(tmp_path: Path) -> None:
    async with webhook_app(tmp_path) as hook:
        await ann_with_a_tier(hook)
        with structlog.testing.capture_logs() as logs:
            await hook.post(pack_event(hook))
            await hook.post(sub_event(hook, "evt_c", "created", sub_json(hook), hook.now))
            await hook.post(pack_event(hook), secret="whsec_wrong")
            customer = {"id": CUSTOMER, "object": "customer", "email": ANN}
            await hook.post(se.event("evt_cu", "customer.created", customer, created=hook.now))
        events = [entry["event"] for entry in logs]
        assert "stripe_event_processed" in events and "stripe_webhook_refused" in events
        written = repr(logs)
        for secret in (ANN, "ann.webhook", API_KEY, SECRET):
            assert secret not in written
