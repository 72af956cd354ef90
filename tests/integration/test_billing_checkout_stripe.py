"""The billing pages' flows (web/billing/pages.py, services/billing_checkout.py) through the
real `stripe` client (adapters/payments/stripe_gateway.py) on tests/fakestripe: the fake's
Checkout, pay page and Billing Portal in front of localstripe. The customer is made once on
localstripe and reused, Checkout sends the browser to the fake's /pay page, paying there
comes back to the success page, the portal's URL links back to /app/billing, and after a
paid subscription (localstripe's subscription and invoice) the billing page lists its
invoice; Stripe out of reach gives the "payment unavailable" page and stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import pytest

from mailvet.adapters.payments.stripe_gateway import StripeGateway
from mailvet.domain.payments import Payments
from tests import fakestripe
from tests.fakestripe import API_KEY, StripeWorld
from tests.web.auth_helpers import Browser
from tests.web.shell_helpers import HTTPS
from tests.web.test_billing_pages import (
    ANN,
    BOB,
    BillingSite,
    add_tier,
    billing_rows,
    billing_site,
    signed_in,
    stored_customer,
)

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_KEY}"}
stripe_world = fakestripe.stripe_world  # the fixtures
stripe_api = fakestripe.stripe_api


class PerCallGateway:
    """The Payments port on a StripeGateway made for each call and closed after it: the
    test client serves the app in an event loop of its own (a new one per client), and the
    gateway's HTTP connections belong to the loop that opened them."""

    def __init__(self, api_base: str, key: str = API_KEY) -> None:
        self.api_base, self.key = api_base, key

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            gateway = StripeGateway(self.key, api_base=self.api_base, max_network_retries=0)
            try:
                return await getattr(gateway, name)(*args, **kwargs)
            finally:
                await gateway.aclose()

        return call


@asynccontextmanager
async def stripe_site(tmp_path: Path, api_base: str) -> AsyncIterator[BillingSite]:
    async with billing_site(tmp_path, cast(Payments, PerCallGateway(api_base))) as s:
        yield s


async def _stripe(method: str, address: str, **form: str) -> httpx.Response:
    async with httpx.AsyncClient(headers=AUTH, trust_env=False) as client:
        return await client.request(method, address, data=form or None)


async def _customers(world: StripeWorld) -> list[str]:
    got = await _stripe("GET", f"{world.localstripe_url}/v1/customers")
    assert got.status_code == 200, got.text
    return [c["id"] for c in got.json()["data"]]


async def _pay(b: Browser, checkout: httpx.Response) -> httpx.Response:
    """Pay on the fake's Checkout page and follow its redirect back to the site."""
    assert checkout.status_code == 303, checkout.text
    url = checkout.headers["location"]
    async with httpx.AsyncClient(trust_env=False) as client:
        page = await client.get(url)
        assert page.status_code == 200 and "id='pay'" in page.text
        paid = await client.post(url)
    assert paid.status_code == 303
    back = urlsplit(paid.headers["location"])
    assert f"{back.scheme}://{back.netloc}" == HTTPS
    return await b.get(f"{back.path}?{back.query}")


async def test_a_pack_through_stripe_one_customer_the_pay_page_and_its_receipt(
    tmp_path: Path, stripe_api: StripeWorld
) -> None:
    async with stripe_site(tmp_path, stripe_api.api_base) as s:
        ann = await s.account(ANN)
        await s.account(BOB)
        async with signed_in(s) as b:
            await b.get("/app/billing")
            first = await b.post("/app/billing/checkout/pack", {"credits": "2,000"})
            assert first.status_code == 303, first.text
            assert first.headers["location"].startswith(f"{stripe_api.api_base}/pay/cs_test_")
            second = await b.post("/app/billing/checkout/pack", {"credits": "3000"})
            assert second.status_code == 303
            customer = await stored_customer(s, ann.id)
            assert customer is not None and await _customers(stripe_api) == [customer]
            refused = await b.post("/app/billing/checkout/pack", {"credits": "999"})
            assert refused.status_code == 422
            assert len(stripe_api.fake.sessions) == 2  # no session for the refused count
            session_id = first.headers["location"].rsplit("/", 1)[1]
            session = stripe_api.fake.sessions[session_id]
            assert session["client_reference_id"] == ann.id
            assert session["metadata"]["credits"] == "2000"
            assert (session["amount_total"], session["customer"]) == (2_000, customer)
            back = await _pay(b, first)
            assert back.status_code == 200, back.text
            assert "Paid: 2,000 credits are being added" in back.text  # the webhook adds them
            page = (await b.get("/app/billing")).text
            assert f'href="{stripe_api.api_base}/receipt/' in page  # Checkout's invoice
            assert "$20" in page
        async with signed_in(s, BOB) as other:
            theirs = await other.get(f"/app/billing/success?session_id={session_id}")
            assert theirs.status_code == 404


async def test_a_subscription_through_stripe_then_its_invoice_and_the_portal(
    tmp_path: Path, stripe_api: StripeWorld
) -> None:
    made = await _stripe(
        "POST",
        f"{stripe_api.api_base}/v1/prices",
        product="prod_mailvet_tiers",
        currency="usd",
        unit_amount="2900",
        nickname="Starter",
        **{"recurring[interval]": "month", "metadata[credits]": "5000"},
    )
    assert made.status_code == 200, made.text
    price = made.json()["id"]
    async with stripe_site(tmp_path, stripe_api.api_base) as s:
        ann = await s.account(ANN)
        await add_tier(s, "starter", amount=2_900, price=price)
        async with signed_in(s) as b:
            await b.get("/app/billing")
            checkout = await b.post("/app/billing/checkout/subscription", {"tier": "starter"})
            assert checkout.headers["location"].startswith(f"{stripe_api.api_base}/pay/cs_test_")
            back = await _pay(b, checkout)
            assert "Subscription started" in back.text
            customer = await stored_customer(s, ann.id)
            assert customer is not None and await _customers(stripe_api) == [customer]
            listed = await _stripe(
                "GET", f"{stripe_api.localstripe_url}/v1/invoices?customer={customer}"
            )
            [invoice] = listed.json()["data"]  # localstripe's, of the subscription
            page = (await b.get("/app/billing")).text
            assert f'id="invoice-{invoice["id"]}"' in page
            assert "$29" in page and "paid" in page
            portal = await b.post("/app/billing/portal")
            assert portal.status_code == 303
            url = portal.headers["location"]
            assert url.startswith(f"{stripe_api.api_base}/portal/bps_test_")
            async with httpx.AsyncClient(trust_env=False) as client:
                shown = await client.get(url)
            assert f"{HTTPS}/app/billing" in shown.text  # it links back to the page
            assert await _customers(stripe_api) == [customer]  # still the one customer


async def test_stripe_unreachable_gives_the_unavailable_page_and_stores_nothing(
    tmp_path: Path, stripe_api: StripeWorld
) -> None:
    async with stripe_site(tmp_path, "http://127.0.0.1:9") as s:
        await s.account(ANN)
        async with signed_in(s) as b:
            await b.get("/app/billing")
            down = await b.post("/app/billing/checkout/pack", {"credits": "5000"})
            assert down.status_code == 503
            assert "Payment is unavailable" in down.text
        assert await billing_rows(s) == 0
        assert stripe_api.fake.sessions == {}
