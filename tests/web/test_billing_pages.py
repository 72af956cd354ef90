"""The billing pages (web/billing/pages.py, services/billing_checkout.py) of the site as
`mailvet run web` builds it, with the Payments port in memory (MemoryPayments): the pricing
page's tiers and packs, the billing page (balance, tier, renewal or cancellation date,
invoices with receipt links, history), Checkout for a pack and a tier (303 to Stripe, the
input checked first with no Stripe call), the portal, the success and cancelled pages (only
the account's own session), billing off, CSRF, Stripe down, the per-account limit, and one
stored customer when two first needs race."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.db.billing_models import BillingAccountRow, BillingTierRow
from mailvet.adapters.mail.memory import MemoryMailer
from mailvet.adapters.payments.memory import MemoryPayments
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import build_deps
from mailvet.domain.accounts import Account
from mailvet.domain.billing import pack_key, pack_price
from mailvet.domain.credits import EntryKind
from mailvet.domain.payments import CheckoutSession, Invoice, Payments, PaymentsError, Price
from mailvet.services import billing_checkout, credits
from mailvet.services.accounts import create_account
from mailvet.services.invoice_cache import InvoiceCache
from mailvet.settings import load_settings
from mailvet.web.billing.pages import CHECKOUT_PER_ACCOUNT, SUCCESS_PER_ACCOUNT
from mailvet.web.context import build_web_context
from mailvet.web.site import Site, build_site
from tests.fakes import FakeProber, FakeResolver
from tests.web.account_helpers import writing
from tests.web.auth_helpers import HTML, PASSWORD, Browser, log_in
from tests.web.shell_helpers import HTTPS, cheap_hasher, look

pytestmark = pytest.mark.pipeline

ANN = "ann.lee@example.com"
BOB = "bob@example.com"
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
CHECKOUT = "https://checkout.invalid"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class BillingSite:
    site: Site
    payments: Payments | None
    url: str  # the database's URL, for a look from the test's loop

    @property
    def memory(self) -> MemoryPayments:
        assert isinstance(self.payments, MemoryPayments)
        return self.payments

    async def account(self, email: str, *, balance: int = 100) -> Account:
        async with writing(self.url) as session:
            return await create_account(
                session,
                email=email,
                password=PASSWORD,
                confirmed=True,
                credits=balance,
                hasher=cheap_hasher(),
                now=datetime.now(UTC),
            )


@asynccontextmanager
async def billing_site(
    data_dir: Path, payments: Payments | None, env: Mapping[str, str] | None = None
) -> AsyncIterator[BillingSite]:
    """The site of tests/web/site_helpers.py with the web context's Payments port given
    (None: billing off; tests/integration/test_billing_checkout_stripe.py gives the Stripe
    gateway)."""
    settings = load_settings(
        {
            "MAILVET_DATA_DIR": str(data_dir),
            "MAILVET_PUBLIC_URL": HTTPS,
            "MAILVET_MAILER": "memory",
            **(env or {}),
        }
    )
    deps = await build_deps(
        settings,
        storage=MemoryStorage(),
        bus=MemoryBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )
    try:
        web = await build_web_context(settings, hasher=cheap_hasher(), payments=payments)
        try:
            site = await build_site(deps, web=web, mailer=MemoryMailer())
            try:
                yield BillingSite(site=site, payments=payments, url=settings.database)
            finally:
                await site.close()
        finally:
            await web.close()
    finally:
        await deps.close()


@asynccontextmanager
async def signed_in(s: BillingSite, email: str = ANN) -> AsyncIterator[Browser]:
    async with AsyncTestClient(s.site.app, base_url=HTTPS) as client:
        b = Browser(client)
        assert (await log_in(b, email)).status_code == 303
        yield b


async def add_tier(
    s: BillingSite,
    name: str,
    *,
    label: str = "",
    credits_a_month: int = 5_000,
    amount: int = 2_900,
    active: bool = True,
    price: str | None = None,
) -> str:
    """A tier row (as `mailvet billing sync` stores it) and, with MemoryPayments, its price
    there (`price`: the id of a price made elsewhere)."""
    price = price or f"price_{name}"
    async with writing(s.url) as session:
        session.add(
            BillingTierRow(
                name=name,
                label=label or name.title(),
                monthly_credits=credits_a_month,
                amount=amount,
                currency="usd",
                price=price,
                product="prod_tiers",
                active=active,
                synced_at=T0,
            )
        )
    if isinstance(s.payments, MemoryPayments):
        s.payments.price_list[price] = Price(
            id=price,
            product="prod_tiers",
            unit_amount=amount,
            currency="usd",
            interval="month",
            active=active,
        )
    return price


async def set_billing(s: BillingSite, account_id: str, **values: object) -> None:
    """The account's billing row as the webhook would have left it."""
    async with writing(s.url) as session:
        row = await session.get(BillingAccountRow, account_id)
        if row is None:
            row = BillingAccountRow(account_id=account_id, updated_at=T0)
            session.add(row)
        for name, value in values.items():
            setattr(row, name, value)


async def stored_customer(s: BillingSite, account_id: str) -> str | None:
    async with writing(s.url) as session:
        row = await session.get(BillingAccountRow, account_id)
        return None if row is None else row.customer


async def billing_rows(s: BillingSite) -> int:
    async with writing(s.url) as session:
        return len(list((await session.execute(select(BillingAccountRow))).scalars()))


def session_of(location: str) -> str:
    assert location.startswith(f"{CHECKOUT}/pay/cs_"), location
    return location.rsplit("/", 1)[1]


# --- pricing -----------------------------------------------------------------------------------


async def test_pricing_lists_the_tiers_and_packs_and_leads_a_visitor_to_sign_in(
    tmp_path: Path,
) -> None:
    async with billing_site(tmp_path, MemoryPayments(base_url=CHECKOUT)) as s:
        await add_tier(s, "starter", label=HOSTILE, credits_a_month=5_000, amount=2_900)
        await add_tier(s, "pro", credits_a_month=50_000, amount=19_950)
        await add_tier(s, "legacy", label="Legacy plan", active=False)
        await s.account(ANN)
        async with AsyncTestClient(s.site.app, base_url=HTTPS) as client:
            visitor = Browser(client)
            page = (await visitor.get("/pricing")).text
            assert "$29 a month" in page and "5,000 credits each month" in page
            assert "$199.50 a month" in page and "50,000 credits each month" in page
            assert "Legacy plan" not in page  # inactive
            assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
            assert "$10 per 1,000 credits" in page and "1,000 to 10,000,000 credits" in page
            # signed out: the buy form is a GET of the billing page, which needs a sign-in
            assert '<form method="get" action="/app/billing" id="pricing-buy">' in page
            assert 'action="/app/billing/checkout' not in page
            lead = await visitor.request("GET", "/app/billing?credits=25000", headers=HTML)
            assert lead.status_code == 303
            assert parse_qs(urlsplit(lead.headers["location"]).query)["next"] == [
                "/app/billing?credits=25000"
            ]
            assert (await log_in(visitor, ANN)).status_code == 303
            filled = (await visitor.get("/app/billing?credits=25000")).text
            assert 'id="pack-credits" name="credits"' in filled and 'value="25000"' in filled
            signed = (await visitor.get("/pricing")).text
            assert 'action="/app/billing/checkout/pack"' in signed
            assert signed.count('action="/app/billing/checkout/subscription"') == 2


async def test_pricing_without_billing_shows_the_tiers_with_no_buttons(tmp_path: Path) -> None:
    async with billing_site(tmp_path, None) as s:
        await add_tier(s, "starter", label="Starter plan")
        await s.account(ANN)
        async with signed_in(s) as b:
            page = (await b.get("/pricing")).text
            assert "Starter plan" in page
            assert "/app/billing" not in page
            assert "not available on this installation" in page


async def test_pricing_follows_the_unit_price_setting(tmp_path: Path) -> None:
    env = {"MAILVET_CREDIT_UNIT_PRICE_CENTS": "750", "MAILVET_CREDIT_CURRENCY": "eur"}
    async with billing_site(tmp_path, MemoryPayments(base_url=CHECKOUT), env) as s:
        await s.account(ANN)
        async with signed_in(s) as b:
            assert "€7.50 per 1,000 credits" in (await b.get("/pricing")).text
            made = await b.post("/app/billing/checkout/pack", {"credits": "3000"})
            assert made.status_code == 303, made.text
            session = s.memory.sessions[session_of(made.headers["location"])]
            assert (session.amount_total, session.currency) == (2_250, "eur")


# --- buying a pack -----------------------------------------------------------------------------


async def test_a_pack_goes_to_checkout_with_the_account_and_credits_and_one_customer(
    tmp_path: Path,
) -> None:
    async with billing_site(tmp_path, MemoryPayments(base_url=CHECKOUT)) as s:
        ann = await s.account(ANN)
        async with signed_in(s) as b:
            await b.get("/app/billing")
            first = await b.post("/app/billing/checkout/pack", {"credits": "25,000"})
            assert first.status_code == 303, first.text
            session = s.memory.sessions[session_of(first.headers["location"])]
            assert session.mode == "payment"
            assert session.client_reference_id == ann.id
            assert session.metadata["credits"] == "25000"
            assert session.amount_total == pack_price(25_000, 1000) == 25_000
            customer = await stored_customer(s, ann.id)
            assert customer is not None and session.customer == customer
            assert s.memory.customers[customer] == {"account_id": ann.id, "email": ANN}
            again = await b.post("/app/billing/checkout/pack", {"credits": "1000"})
            assert again.status_code == 303
            second = s.memory.sessions[session_of(again.headers["location"])]
            assert second.customer == customer and second.amount_total == 1_000
            assert list(s.memory.customers) == [customer]  # made once, reused
            # no credits added by the pages: the webhook does that
            async with writing(s.url) as db:
                assert (await credits.balance(db, ann.id)).balance == 100


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "Enter a whole number of credits, 1,000 to 10,000,000."),
        ("", "Enter a whole number of credits"),
        ("-5000", "Enter a whole number of credits"),
        ("999", "A pack is 1,000 to 10,000,000 credits; 999 is not."),
        ("10,000,001", "A pack is 1,000 to 10,000,000 credits; 10,000,001 is not."),
        ("1e6", "Enter a whole number of credits"),
    ],
)
async def test_a_wrong_count_is_refused_on_the_form_with_no_stripe_call(
    tmp_path: Path, text: str, message: str
) -> None:
    async with billing_site(tmp_path, MemoryPayments(base_url=CHECKOUT)) as s:
        await s.account(ANN)
        async with signed_in(s) as b:
            await b.get("/app/billing")
            refused = await b.post("/app/billing/checkout/pack", {"credits": text})
            assert refused.status_code == 422
            assert 'id="pack-credits-error" role="alert">' + message in refused.text
            assert 'aria-invalid="true"' in refused.text
            assert s.memory.customers == {} and s.memory.sessions == {}
            assert await billing_rows(s) == 0


# --- subscribing and the portal --------------------------------------------------------------


async def test_a_tier_goes_to_checkout_and_a_subscriber_to_the_portal(tmp_path: Path) -> None:
    async with billing_site(tmp_path, MemoryPayments(base_url=CHECKOUT)) as s:
        ann = await s.account(ANN)
        await add_tier(s, "starter")
        await add_tier(s, "legacy", active=False)
        async with signed_in(s) as b:
            page = await b.get("/app/billing")
            assert 'name="tier" value="starter"' in page.text
            assert 'value="legacy"' not in page.text
            made = await b.post("/app/billing/checkout/subscription", {"tier": "starter"})
            assert made.status_code == 303, made.text
            session = s.memory.sessions[session_of(made.headers["location"])]
            assert (session.mode, session.client_reference_id) == ("subscription", ann.id)
            assert session.amount_total == 2_900
            for wrong in ("legacy", "nothing", "", "x" * 500):
                refused = await b.post("/app/billing/checkout/subscription", {"tier": wrong})
                assert refused.status_code == 422, wrong
                assert "There is no such plan to subscribe to." in refused.text
            assert len(s.memory.sessions) == 1
            await set_billing(s, ann.id, subscription_id="sub_1", tier="starter", status="active")
            page = await b.get("/app/billing")
            assert 'id="manage-plan">Manage your plan' in page.text
            assert 'name="tier"' not in page.text  # no second subscription offered
            sent = await b.post("/app/billing/checkout/subscription", {"tier": "starter"})
            assert sent.status_code == 303
            assert sent.headers["location"].startswith(f"{CHECKOUT}/portal/bps_")
            assert len(s.memory.sessions) == 1  # no second Checkout
            portal = await b.post("/app/billing/portal")
            assert portal.status_code == 303
            assert portal.headers["location"].startswith(f"{CHECKOUT}/portal/bps_")
            assert len(s.memory.portals) == 2


# --- the billing page --------------------------------------------------------------------------


async def test_the_page_shows_tier_renewal_invoices_and_history(tmp_path: Path) -> None:
    payments = MemoryPayments(base_url=CHECKOUT)
    async with billing_site(tmp_path, payments) as s:
        ann = await s.account(ANN, balance=40)
        bob = await s.account(BOB)
        await add_tier(s, "starter", label=HOSTILE)
        job_id = uuid.uuid4().hex
        async with writing(s.url) as db:
            await credits.reserve_for_job(db, ann.id, job_id, 15, datetime.now(UTC))
        renews = int(datetime(2026, 4, 1, tzinfo=UTC).timestamp())
        payments.customers["cus_ann"] = {"account_id": ann.id, "email": ANN}
        await set_billing(
            s,
            ann.id,
            customer="cus_ann",
            subscription_id="sub_1",
            tier="starter",
            status="active",
            current_period_end=renews,
            shortfall=7,
        )
        payments.invoice_list["in_1"] = Invoice(
            id="in_1",
            customer="cus_ann",
            status="paid",
            amount_paid=2_900,
            currency="usd",
            created=int(T0.timestamp()),
            number="MV-0001",
            hosted_invoice_url="https://invoice.stripe.test/i/in_1",
        )
        payments.invoice_list["in_2"] = Invoice(
            id="in_2",
            customer="cus_ann",
            status="open",
            amount_due=2_900,
            currency="usd",
            created=int(T0.timestamp()) + 10,
            hosted_invoice_url="javascript:alert(1)",
        )
        payments.invoice_list["in_bob"] = Invoice(
            id="in_bob", customer="cus_bob", status="paid", number="BOB-INVOICE"
        )
        async with signed_in(s) as b:
            page = await b.get("/app/billing")
            assert page.status_code == 200, page.text
            text = page.text
            assert '<strong id="billing-balance">25</strong>' in text
            assert '<span id="billing-reserved">15</span>' in text
            assert HOSTILE not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
            assert 'id="billing-renews">Renews on <time datetime="2026-04-01' in text
            assert "7 credits of refunded payments" in text
            assert '<a href="https://invoice.stripe.test/i/in_1"' in text and "MV-0001" in text
            assert "$29" in text
            assert "javascript:" not in text and 'id="invoice-in_2"' in text
            assert text.index('id="invoice-in_2"') < text.index('id="invoice-in_1"')
            assert "BOB-INVOICE" not in text
            assert f'href="/app/jobs/{job_id}"' in text
            assert "no-store" in page.headers["cache-control"]
            assert 'action="/app/billing/checkout/pack"' in text
            await set_billing(s, ann.id, cancel_at=renews)
            cancelled = (await b.get("/app/billing")).text
            assert 'id="billing-cancels">Cancelled: it ends on <time' in cancelled
            assert "Renews on" not in cancelled
        async with signed_in(s, BOB) as other:
            theirs = (await other.get("/app/billing")).text
            assert "MV-0001" not in theirs and "Plan: <strong>Free</strong>" in theirs
            assert 'id="no-invoices">No invoices yet.' in theirs
            assert bob.id not in theirs


async def test_an_invoice_in_a_zero_decimal_currency_is_shown_in_its_units(
    tmp_path: Path,
) -> None:
    """Stripe gives a JPY amount in yen: ¥5,000 is 5000, not 50 (the page showed ¥50)."""
    payments = MemoryPayments(base_url=CHECKOUT)
    async with billing_site(tmp_path, payments) as s:
        ann = await s.account(ANN)
        payments.customers["cus_ann"] = {"account_id": ann.id, "email": ANN}
        await set_billing(s, ann.id, customer="cus_ann")
        created = int(datetime(2026, 5, 1, 12, tzinfo=UTC).timestamp())
        for ident, amount, currency in (("in_jpy", 5_000, "jpy"), ("in_usd", 2_990, "usd")):
            payments.invoice_list[ident] = Invoice(
                id=ident,
                customer="cus_ann",
                status="paid",
                amount_paid=amount,
                currency=currency,
                created=created,
            )
        async with signed_in(s) as b:
            text = (await b.get("/app/billing")).text
        jpy = text[text.index('id="invoice-in_jpy"') :]
        assert "<td>¥5,000</td>" in jpy[: jpy.index("</tr>")]
        usd = text[text.index('id="invoice-in_usd"') :]
        assert "<td>$29.90</td>" in usd[: usd.index("</tr>")]
        assert "<td>2026-05-01</td>" in usd[: usd.index("</tr>")]


async def test_stripe_down_the_page_renders_and_checkout_is_unavailable(tmp_path: Path) -> None:
    payments = MemoryPayments(base_url=CHECKOUT)
    async with billing_site(tmp_path, payments) as s:
        ann = await s.account(ANN)
        bob = await s.account(BOB)
        await add_tier(s, "starter")
        payments.customers["cus_ann"] = {"account_id": ann.id, "email": ANN}
        await set_billing(s, ann.id, customer="cus_ann")
        payments.fail_with = PaymentsError("Stripe could not be reached", status=None)
        async with signed_in(s) as b:
            page = await b.get("/app/billing")
            assert page.status_code == 200
            assert 'id="invoices-unavailable"' in page.text
            assert 'id="billing-balance">100<' in page.text
            for path, form in (
                ("/app/billing/checkout/pack", {"credits": "5000"}),
                ("/app/billing/checkout/subscription", {"tier": "starter"}),
                ("/app/billing/portal", {}),
            ):
                down = await b.post(path, form)
                assert down.status_code == 503, path
                assert "Payment is unavailable" in down.text
        async with signed_in(s, BOB) as other:
            await other.get("/app/billing")
            down = await other.post("/app/billing/checkout/pack", {"credits": "5000"})
            assert down.status_code == 503
        assert await stored_customer(s, bob.id) is None  # nothing stored
        assert payments.sessions == {}


# --- the return pages --------------------------------------------------------------------------


async def test_success_says_what_was_paid_and_only_for_the_accounts_own_session(
    tmp_path: Path,
) -> None:
    payments = MemoryPayments(base_url=CHECKOUT)
    async with billing_site(tmp_path, payments) as s:
        ann = await s.account(ANN)
        await s.account(BOB)
        await add_tier(s, "starter")
        async with signed_in(s) as b:
            await b.get("/app/billing")
            made = await b.post("/app/billing/checkout/pack", {"credits": "2,000"})
            pack = session_of(made.headers["location"])
            sub = session_of(
                (await b.post("/app/billing/checkout/subscription", {"tier": "starter"})).headers[
                    "location"
                ]
            )
            pending = await b.get(f"/app/billing/success?session_id={pack}")
            assert pending.status_code == 200
            assert "Stripe is confirming the payment: the 2,000 credits" in pending.text
            payments.complete(pack)
            paid = await b.get(f"/app/billing/success?session_id={pack}")
            assert "Paid: 2,000 credits are being added" in paid.text
            async with writing(s.url) as db:  # what the webhook does
                await credits.grant(
                    db, ann.id, 2_000, kind=EntryKind.PURCHASE, now=T0, key=pack_key(pack)
                )
            added = await b.get(f"/app/billing/success?session_id={pack}")
            assert "Paid: 2,000 credits were added to your balance." in added.text
            payments.complete(sub)
            started = await b.get(f"/app/billing/success?session_id={sub}")
            assert "Subscription started" in started.text
            for unknown in ("cs_mem_999", "", "not-a-session", "cs_" + "x" * 400):
                missing = await b.get(f"/app/billing/success?session_id={unknown}")
                assert missing.status_code == 404, unknown
            cancelled = await b.get("/app/billing/cancelled")
            assert cancelled.status_code == 200 and "nothing was charged" in cancelled.text
        async with signed_in(s, BOB) as other:
            theirs = await other.get(f"/app/billing/success?session_id={pack}")
            assert theirs.status_code == 404
            assert "2,000" not in theirs.text
        async with AsyncTestClient(s.site.app, base_url=HTTPS) as client:
            anonymous = await Browser(client).get(f"/app/billing/success?session_id={pack}")
            assert anonymous.status_code == 303
            assert anonymous.headers["location"].startswith("/login")


@pytest.mark.parametrize("mode", ["payment", "subscription"])
async def test_a_complete_session_still_unpaid_is_not_said_paid(tmp_path: Path, mode: str) -> None:
    """A delayed method (ACH, SEPA) completes the session with payment_status unpaid: the
    money comes days later, and so do the credits."""
    payments = MemoryPayments(base_url=CHECKOUT)
    async with billing_site(tmp_path, payments) as s:
        await s.account(ANN)
        await add_tier(s, "starter")
        async with signed_in(s) as b:
            await b.get("/app/billing")
            path, form = (
                ("/app/billing/checkout/pack", {"credits": "3000"})
                if mode == "payment"
                else ("/app/billing/checkout/subscription", {"tier": "starter"})
            )
            made = session_of((await b.post(path, form)).headers["location"])
            payments.sessions[made] = msgspec.structs.replace(
                payments.sessions[made], status="complete", payment_status="unpaid", url=None
            )
            page = await b.get(f"/app/billing/success?session_id={made}")
            assert page.status_code == 200
            assert "Stripe is confirming the payment" in page.text
            assert "Paid" not in page.text and "has started" not in page.text
            payments.complete(made)
            paid = (await b.get(f"/app/billing/success?session_id={made}")).text
            assert "Stripe is confirming" not in paid
            assert ("Paid: 3,000 credits" if mode == "payment" else "has started") in paid


# --- billing off, CSRF, the limit --------------------------------------------------------------


async def test_billing_off_shows_credits_and_answers_404_to_the_forms(tmp_path: Path) -> None:
    async with billing_site(tmp_path, None) as s:
        await s.account(ANN, balance=12)
        await add_tier(s, "starter")
        async with signed_in(s) as b:
            page = await b.get("/app/billing")
            assert page.status_code == 200
            assert 'id="billing-balance">12<' in page.text
            assert "an administrator grants credits" in page.text
            assert "/app/billing/checkout" not in page.text and "Invoices" not in page.text
            for path, form in (
                ("/app/billing/checkout/pack", {"credits": "5000"}),
                ("/app/billing/checkout/subscription", {"tier": "starter"}),
                ("/app/billing/portal", {}),
            ):
                assert (await b.post(path, form)).status_code == 404, path
            assert (await b.get("/app/billing/success?session_id=cs_x")).status_code == 404
            assert (await b.get("/app/billing/cancelled")).status_code == 404
        assert await billing_rows(s) == 0


async def test_the_forms_refuse_a_missing_or_wrong_csrf_token(tmp_path: Path) -> None:
    async with billing_site(tmp_path, MemoryPayments(base_url=CHECKOUT)) as s:
        await s.account(ANN)
        await add_tier(s, "starter")
        async with signed_in(s) as b:
            await b.get("/app/billing")
            for path, form in (
                ("/app/billing/checkout/pack", {"credits": "5000"}),
                ("/app/billing/checkout/subscription", {"tier": "starter"}),
                ("/app/billing/portal", {}),
            ):
                assert (await b.post(path, form, csrf=False)).status_code == 403, path
                forged = await b.post(path, {**form, "_csrf_token": "x" * 64}, csrf=False)
                assert forged.status_code == 403, path
            assert s.memory.customers == {} and s.memory.sessions == {}
            assert (await b.post("/app/billing/portal")).status_code == 303  # the token works


async def test_checkout_is_limited_per_account(tmp_path: Path) -> None:
    async with billing_site(tmp_path, MemoryPayments(base_url=CHECKOUT)) as s:
        await s.account(ANN)
        await s.account(BOB)
        async with signed_in(s) as b:
            await b.get("/app/billing")
            for _ in range(CHECKOUT_PER_ACCOUNT.limit):
                made = await b.post("/app/billing/checkout/pack", {"credits": "1000"})
                assert made.status_code == 303
            refused = await b.post("/app/billing/checkout/pack", {"credits": "1000"})
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) > 0
            assert len(s.memory.sessions) == CHECKOUT_PER_ACCOUNT.limit
        async with signed_in(s, BOB) as other:  # per account, not per client
            await other.get("/app/billing")
            made = await other.post("/app/billing/checkout/pack", {"credits": "1000"})
            assert made.status_code == 303


class CountingPayments(MemoryPayments):
    """MemoryPayments counting the calls that read from Stripe."""

    def __init__(self) -> None:
        super().__init__(base_url=CHECKOUT)
        self.invoice_calls = 0
        self.session_calls = 0

    async def invoices(self, customer: str, *, limit: int = 24) -> list[Invoice]:
        self.invoice_calls += 1
        return await super().invoices(customer, limit=limit)

    async def checkout_session(self, session_id: str) -> CheckoutSession:
        self.session_calls += 1
        return await super().checkout_session(session_id)


async def test_the_invoices_are_asked_of_stripe_once_a_minute_or_after_a_checkout(
    tmp_path: Path,
) -> None:
    payments = CountingPayments()
    async with billing_site(tmp_path, payments) as s:
        ann = await s.account(ANN)
        await s.account(BOB)
        payments.customers["cus_ann"] = {"account_id": ann.id, "email": ANN}
        await set_billing(s, ann.id, customer="cus_ann")
        payments.invoice_list["in_1"] = Invoice(id="in_1", customer="cus_ann", status="paid")
        ticks = [0.0]
        s.site.web.invoice_cache = InvoiceCache(60, clock=lambda: ticks[0])
        async with signed_in(s) as b:
            for _ in range(5):
                assert 'id="invoice-in_1"' in (await b.get("/app/billing")).text
            for _ in range(3):  # the form's 422 re-renders
                refused = await b.post("/app/billing/checkout/pack", {"credits": "12"})
                assert refused.status_code == 422 and 'id="invoice-in_1"' in refused.text
            assert payments.invoice_calls == 1
            # a checkout started: it may pay, the next render asks again
            made = await b.post("/app/billing/checkout/pack", {"credits": "1000"})
            pack = session_of(made.headers["location"])
            payments.invoice_list["in_2"] = Invoice(
                id="in_2", customer="cus_ann", status="paid", created=10
            )
            assert 'id="invoice-in_2"' in (await b.get("/app/billing")).text
            assert payments.invoice_calls == 2
            await b.get("/app/billing")
            assert payments.invoice_calls == 2
            # back on the success page: forgotten again
            await b.get(f"/app/billing/success?session_id={pack}")
            await b.get("/app/billing")
            assert payments.invoice_calls == 3
            await b.get("/app/billing")
            ticks[0] += 59.9
            await b.get("/app/billing")
            assert payments.invoice_calls == 3
            ticks[0] += 0.1  # a minute later the list is read again
            await b.get("/app/billing")
            assert payments.invoice_calls == 4


async def test_the_success_page_is_limited_per_account(tmp_path: Path) -> None:
    payments = CountingPayments()
    async with billing_site(tmp_path, payments) as s:
        await s.account(ANN)
        await s.account(BOB)
        async with signed_in(s) as b:
            await b.get("/app/billing")
            made = await b.post("/app/billing/checkout/pack", {"credits": "1000"})
            pack = session_of(made.headers["location"])
            for _ in range(SUCCESS_PER_ACCOUNT.limit):
                shown = await b.get(f"/app/billing/success?session_id={pack}")
                assert shown.status_code == 200
            refused = await b.get(f"/app/billing/success?session_id={pack}")
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) > 0
            assert payments.session_calls == SUCCESS_PER_ACCOUNT.limit  # Stripe not asked
        async with signed_in(s, BOB) as other:  # per account
            theirs = await other.get(f"/app/billing/success?session_id={pack}")
            assert theirs.status_code == 404


# --- the customer, made once -------------------------------------------------------------------


class RacingPayments(MemoryPayments):
    """Both first needs reach Stripe before either is answered."""

    def __init__(self) -> None:
        super().__init__(base_url=CHECKOUT)
        self.barrier = asyncio.Barrier(2)
        self.keys: list[str | None] = []

    async def create_customer(
        self, *, account_id: str, email: str, idempotency_key: str | None = None
    ) -> str:
        self.keys.append(idempotency_key)
        made = await super().create_customer(
            account_id=account_id, email=email, idempotency_key=idempotency_key
        )
        await self.barrier.wait()
        return made


async def test_two_first_needs_at_once_keep_one_customer(tmp_path: Path) -> None:
    payments = RacingPayments()
    async with billing_site(tmp_path, payments) as s:
        ann = await s.account(ANN)
        async with look(s.url) as database:
            got = await asyncio.wait_for(
                asyncio.gather(
                    billing_checkout.customer_for(database, payments, ann.id),
                    billing_checkout.customer_for(database, payments, ann.id),
                ),
                timeout=30,
            )
            # both asked Stripe, under one key: one customer made, no orphan left in Stripe
            assert payments.keys == [f"mailvet-customer-{ann.id}"] * 2
            assert len(payments.customers) == 1
            assert got[0] == got[1] == await stored_customer(s, ann.id)
            again = await billing_checkout.customer_for(database, payments, ann.id)
            assert again == got[0] and len(payments.customers) == 1


async def test_a_row_the_webhook_made_without_a_customer_gets_one(tmp_path: Path) -> None:
    payments = MemoryPayments(base_url=CHECKOUT)
    async with billing_site(tmp_path, payments) as s:
        ann = await s.account(ANN)
        await set_billing(s, ann.id, tier="free", status="")
        async with look(s.url) as database:
            made = await billing_checkout.customer_for(database, payments, ann.id)
        assert await stored_customer(s, ann.id) == made
        assert payments.customers[made]["account_id"] == ann.id


def test_credits_are_read_with_separators_and_bounds() -> None:
    assert billing_checkout.read_credits(" 25 000 ") == 25_000
    assert billing_checkout.read_credits("10,000,000") == 10_000_000
    for wrong in ("25,00", "1,0000", "٣٠٠٠", "1000.5", "+1000"):
        with pytest.raises(billing_checkout.CheckoutRefused):
            billing_checkout.read_credits(wrong)


async def test_the_area_mounts_the_stripe_webhook(tmp_path: Path) -> None:
    async with (
        billing_site(tmp_path, MemoryPayments(base_url=CHECKOUT)) as s,
        AsyncTestClient(s.site.app, base_url=HTTPS) as client,
    ):
        unsigned = await client.post("/billing/stripe/webhook", content=b"{}")
        assert unsigned.status_code == 400  # there, and refusing what Stripe did not sign


@pytest.mark.parametrize(
    ("payments", "env", "allowed"),
    [
        (
            MemoryPayments(base_url=CHECKOUT),
            {},
            "'self' https://checkout.stripe.com https://billing.stripe.com",
        ),
        (
            MemoryPayments(base_url=CHECKOUT),
            {"MAILVET_STRIPE_API_BASE": "http://127.0.0.1:4242/"},
            "'self' http://127.0.0.1:4242",
        ),
        (None, {}, "'self'"),
    ],
    ids=["stripe", "a-test-stripe", "billing-off"],
)
async def test_the_page_lets_its_forms_reach_stripes_pages_and_no_other(
    tmp_path: Path, payments: Payments | None, env: dict[str, str], allowed: str
) -> None:
    """A browser applies form-action to the 303 after a submission: without Stripe's origins
    the Checkout redirect is blocked (tests/e2e/test_billing_browser.py goes through it)."""
    async with billing_site(tmp_path, payments, env) as s:
        await s.account(ANN)
        async with signed_in(s) as b:
            for answer in (
                await b.get("/app/billing"),
                await b.get("/pricing"),
                await b.post("/app/billing/checkout/pack", {"credits": "12"}),  # 422 or 404
            ):
                if answer.status_code == 404:
                    continue
                policy = answer.headers["content-security-policy"]
                assert f"form-action {allowed};" in policy + ";", policy
                assert "script-src 'self'" in policy
