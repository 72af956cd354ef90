"""Billing against localstripe and its own signed webhooks (issue 10 §4): the SaaS app as `mailvet
run web` builds it (web/site.py) served by uvicorn, MAILVET_STRIPE_API_BASE at tests/fakestripe
(localstripe behind it); localstripe told the app's webhook URL and secret
(POST /_config/webhooks/<id>), so the customer.subscription.* events reaching the app are
the ones localstripe makes and signs (`t=<created>,v1=HMAC`, the body as it exports it, in
its older API shapes).

What localstripe cannot send: invoice.paid (it sends invoice.payment_succeeded, which grants
the period as well; Stripe's invoice.paid of the same period is built here from the invoice
as localstripe serves it, GET /v1/invoices/<id>, and signed by the test: it grants nothing
more); customer.subscription.updated (it sends none, so a cancellation at the period's end
is not seen); invoice.payment_failed for a declined card (it fails at once and silently: its
failing SEPA debit is what sends one, then ends the subscription);
checkout.session.completed and charge.refunded (tests/fakestripe sends the first).
tests/web/test_stripe_webhook.py covers every type self-signed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.db.billing_models import BillingAccountRow
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.adapters.mail.memory import MemoryMailer
from mailvet.adapters.payments.stripe_gateway import StripeGateway
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import build_deps
from mailvet.services import credits
from mailvet.services.accounts import create_account
from mailvet.settings import load_settings
from mailvet.web.billing.webhook import WEBHOOK_PATH
from mailvet.web.site import build_site
from tests import fakestripe
from tests import stripe_events as se
from tests.billing_helpers import tier_row
from tests.fakes import FakeProber, FakeResolver
from tests.fakestripe import API_KEY, StripeWorld
from tests.waiting import until
from tests.web.shell_helpers import cheap_hasher, look

pytestmark = pytest.mark.integration

stripe_world = fakestripe.stripe_world  # the fixtures
stripe_api = fakestripe.stripe_api

SECRET = "whsec_test_localstripe_hooks"
HOOK_ID = "mailvet_billing_localstripe"
HANDLED_BY_LOCALSTRIPE = [
    "customer.subscription.created",
    "customer.subscription.deleted",
    "invoice.payment_failed",
    "invoice.payment_succeeded",
]
PAYING_CARD = {
    "type": "card",
    "card[number]": "4242424242424242",
    "card[exp_month]": "12",
    "card[exp_year]": "2040",
    "card[cvc]": "123",
}
# localstripe's debit that fails after the subscription started (its one payment failure that
# sends invoice.payment_failed: a declined card fails at once, silently)
FAILING_DEBIT = {"type": "sepa_debit", "sepa_debit[iban]": "DE62370400440532013001"}
PLAN = "price_ls_pro"
PRODUCT = "prod_ls_tiers"
TIER_CREDITS = 4_000
AUTH = {"Authorization": f"Bearer {API_KEY}"}
EMAIL = "lena.stripe@example.com"
Scope = MutableMapping[str, Any]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner keeps its signals
        yield


@dataclass
class Served:
    url: str
    database: str  # the site's database URL
    path: Path  # its SQLite file, read synchronously while waiting
    answers: list[int] = field(default_factory=list)  # the webhook's status codes, in order

    def events(self, kind: str) -> int:
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
            row = db.execute(
                "SELECT count(*) FROM stripe_events WHERE type = ?", (kind,)
            ).fetchone()
            return int(row[0])


class _Recording:
    """The site's ASGI app, noting what the webhook answers."""

    def __init__(self, app: Any, answers: list[int]) -> None:
        self.app, self.answers = app, answers

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != WEBHOOK_PATH:
            await self.app(scope, receive, send)
            return

        async def sending(message: Scope) -> None:
            if message["type"] == "http.response.start":
                self.answers.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive, sending)


@contextlib.contextmanager
def served_site(tmp_path: Path, api_base: str) -> Iterator[Served]:
    """The site (build_site over an SQLite file, memory bus and storage, a memory mailer) on
    uvicorn in a thread and loop of its own, MAILVET_BILLING=stripe at `api_base`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = load_settings(
            {
                "MAILVET_DATA_DIR": str(tmp_path),
                "MAILVET_PUBLIC_URL": url,
                "MAILVET_MAILER": "memory",
                "MAILVET_BILLING": "stripe",
                "MAILVET_STRIPE_API_KEY": API_KEY,
                "MAILVET_STRIPE_API_BASE": api_base,
                "MAILVET_STRIPE_WEBHOOK_SECRET": SECRET,
                "MAILVET_STRIPE_MAX_NETWORK_RETRIES": "0",
            }
        )
        served = Served(url, settings.database, tmp_path / "mailvet.db")
        ready = threading.Event()
        holder: list[_Server] = []
        failure: list[BaseException] = []

        async def main() -> None:
            deps = await build_deps(
                settings,
                storage=MemoryStorage(),
                bus=MemoryBus(),
                resolver=FakeResolver(),
                prober=FakeProber(),
                syntax_pool=None,
            )
            try:
                site = await build_site(deps, hasher=cheap_hasher(), mailer=MemoryMailer())
                try:
                    config = uvicorn.Config(
                        _Recording(site.app, served.answers), log_config=None, access_log=False
                    )
                    server = _Server(config)
                    holder.append(server)
                    ready.set()
                    await server.serve(sockets=[sock])
                finally:
                    await site.close()
            finally:
                await deps.close()

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as error:  # raised again in the test's thread
                failure.append(error)
            finally:
                ready.set()

        thread = threading.Thread(target=run, name=f"site {url}", daemon=True)
        thread.start()
        try:
            assert ready.wait(60), "the site was not built within 60 s"
            if failure:
                raise failure[0]
            assert served.path.exists(), served.path
            yield served
        finally:
            if holder:
                holder[0].should_exit = True
            thread.join(30)
        if failure:
            raise failure[0]


@contextlib.contextmanager
def localstripe_hooks(world: StripeWorld, url: str) -> Iterator[None]:
    """localstripe sends its subscription events to `url` until the block ends (then to no
    event type: its hooks outlive DELETE /_config/data, and the world is the session's)."""

    def register(events: list[str]) -> None:
        got = httpx.post(
            f"{world.localstripe_url}/_config/webhooks/{HOOK_ID}",
            json={"url": url, "secret": SECRET, "events": events},
            timeout=10,
        )
        got.raise_for_status()

    register(HANDLED_BY_LOCALSTRIPE)
    try:
        yield
    finally:
        register(["mailvet.test.nothing"])


async def ls(world: StripeWorld, method: str, path: str, **form: str) -> dict[str, Any]:
    """A call to localstripe itself (what the customer's side does there)."""
    async with httpx.AsyncClient(base_url=world.localstripe_url, headers=AUTH) as client:
        got = await client.request(method, path, data=form or None)
    assert got.status_code == 200, got.text
    answer: dict[str, Any] = got.json()
    return answer


@contextlib.asynccontextmanager
async def gateway(world: StripeWorld) -> AsyncIterator[StripeGateway]:
    g = StripeGateway(API_KEY, api_base=world.api_base, max_network_retries=0)
    try:
        yield g
    finally:
        await g.aclose()


async def lena(served: Served) -> str:
    """Lena's account, with no credits."""
    async with look(served.database) as db, db.unit_of_work(write=True) as session:
        account = await create_account(
            session,
            email=EMAIL,
            password=None,
            confirmed=True,
            credits=0,
            hasher=cheap_hasher(),
            now=datetime.now(UTC),
        )
    return account.id


async def link(served: Served, account: str, customer: str) -> None:
    """Lena's billing row naming her Stripe customer (what billing_checkout stores on first
    need), and the tier of PLAN (what `mailvet billing sync` stores)."""
    now = datetime.now(UTC)
    async with look(served.database) as db, db.unit_of_work(write=True) as session:
        session.add(
            BillingAccountRow(
                account_id=account,
                customer=customer,
                tier="free",
                status="",
                version=0,
                shortfall=0,
                updated_at=now,
            )
        )
        row = tier_row(price=PLAN, monthly_credits=TIER_CREDITS, now=now)
        row.product = PRODUCT
        session.add(row)


async def state(served: Served, account: str) -> tuple[str, str, int]:
    """(tier, status, balance)."""
    async with look(served.database) as db, db.session_maker() as session:
        row = await session.get(BillingAccountRow, account)
        assert row is not None
        return row.tier, row.status, (await credits.balance(session, account)).balance


async def outbox_keys(served: Served) -> dict[str, str]:
    async with look(served.database) as db, db.session_maker() as session:
        rows = (
            await session.execute(select(OutboxRow).where(OutboxRow.key.is_not(None)))
        ).scalars()
        return {str(r.key): r.template for r in rows}


async def subscribe(world: StripeWorld, customer: str, method: dict[str, str]) -> dict[str, Any]:
    """The tier's plan on localstripe, a payment method as the customer's default, and a
    subscription to the plan, as localstripe answers it."""
    await ls(world, "POST", "/v1/products", id=PRODUCT, name="Tiers", type="service")
    plan = {"id": PLAN, "product": PRODUCT, "amount": "2900", "currency": "usd"}
    await ls(world, "POST", "/v1/plans", interval="month", **plan)
    card = await ls(world, "POST", "/v1/payment_methods", **method)
    await ls(world, "POST", f"/v1/payment_methods/{card['id']}/attach", customer=customer)
    default = {"invoice_settings[default_payment_method]": card["id"]}
    await ls(world, "POST", f"/v1/customers/{customer}", **default)
    return await ls(
        world, "POST", "/v1/subscriptions", customer=customer, **{"items[0][plan]": PLAN}
    )


async def test_a_localstripe_subscription_grants_its_period_once_and_its_end_frees_the_tier(
    stripe_api: StripeWorld, tmp_path: Path
) -> None:
    with (
        served_site(tmp_path, stripe_api.api_base) as served,
        localstripe_hooks(stripe_api, served.url + WEBHOOK_PATH),
    ):
        async with gateway(stripe_api) as stripe_:
            account = await lena(served)
            customer = await stripe_.create_customer(account_id=account, email=EMAIL)
            await link(served, account, customer)
            sub = await subscribe(stripe_api, customer, PAYING_CARD)
            assert sub["status"] == "active"

            # localstripe's own customer.subscription.created and invoice.payment_succeeded
            told = ("customer.subscription.created", "invoice.payment_succeeded")
            await until(lambda: all(served.events(kind) == 1 for kind in told), timeout=20)
            assert await state(served, account) == ("pro", "active", TIER_CREDITS)
            assert "subscription-confirmed:" + sub["id"] + ":pro" in await outbox_keys(served)

            # the invoice, listed as the billing page lists it; Stripe's invoice.paid of the
            # same period (signed here: localstripe sends none), a replay and a copy of it
            [listed] = await stripe_.invoices(customer)
            assert (listed.subscription, listed.price, listed.status) == (sub["id"], PLAN, "paid")
            served_invoice = await ls(stripe_api, "GET", f"/v1/invoices/{listed.id}")
            async with httpx.AsyncClient(base_url=served.url) as client:
                for ident in ("evt_paid_1", "evt_paid_1", "evt_paid_2"):
                    payload = se.event(
                        ident, "invoice.paid", served_invoice, created=int(time.time())
                    )
                    body, headers = se.signed(payload, SECRET)
                    got = await client.post(WEBHOOK_PATH, content=body, headers=headers)
                    assert got.status_code == 200, got.text
            assert await state(served, account) == ("pro", "active", TIER_CREDITS)  # once

            # cancelled on Stripe: localstripe's customer.subscription.deleted
            await ls(stripe_api, "DELETE", f"/v1/subscriptions/{sub['id']}")
            await until(lambda: served.events("customer.subscription.deleted") == 1, timeout=20)
            assert await state(served, account) == ("free", "canceled", TIER_CREDITS)
            keys = await outbox_keys(served)
            assert keys[f"subscription-ended:{sub['id']}"] == "subscription_ended"
    # localstripe's three deliveries and the test's three, each answered 200 once
    assert served.answers == [200] * 6, served.answers


async def test_a_payment_failing_after_the_start_mails_and_ends_the_plan(
    stripe_api: StripeWorld, tmp_path: Path
) -> None:
    with (
        served_site(tmp_path, stripe_api.api_base) as served,
        localstripe_hooks(stripe_api, served.url + WEBHOOK_PATH),
    ):
        async with gateway(stripe_api) as stripe_:
            account = await lena(served)
            customer = await stripe_.create_customer(account_id=account, email=EMAIL)
            await link(served, account, customer)
            sub = await subscribe(stripe_api, customer, FAILING_DEBIT)
            assert sub["status"] == "active"  # a debit starts active, and may fail later
            # localstripe's customer.subscription.created, then its invoice.payment_failed and
            # customer.subscription.deleted (sent at once, in either order), all signed by it
            kinds = (
                "customer.subscription.created",
                "invoice.payment_failed",
                "customer.subscription.deleted",
            )
            await until(lambda: all(served.events(k) == 1 for k in kinds), timeout=20)
            [failed] = await stripe_.invoices(customer)
            assert failed.status == "open"
            assert await state(served, account) == ("free", "canceled", 0)  # nothing granted
            assert await outbox_keys(served) == {
                f"subscription-confirmed:{sub['id']}:pro": "subscription_confirmed",
                f"payment-failed:{failed.id}": "payment_failed",
                f"subscription-ended:{sub['id']}": "subscription_ended",
            }
    assert served.answers == [200] * 3, served.answers
