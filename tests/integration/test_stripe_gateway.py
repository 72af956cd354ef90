"""StripeGateway (adapters/payments/stripe_gateway.py), the real `stripe` client, against
tests/fakestripe: the fake's Prices, Checkout Sessions and Billing Portal in front of a
localstripe process for customers, subscriptions, invoices and charges. Every port method,
its refusals as PaymentsError/NotFound, and the fake's pay page completing a checkout with a
signed checkout.session.completed that stripe.Webhook.construct_event accepts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import stripe

from mailvet.adapters.payments.stripe_gateway import StripeGateway, event_from_payload
from mailvet.domain.billing import EventKind, pack_price, tier_from_price
from mailvet.domain.payments import CheckoutSession, NotFound, PaymentsError
from tests import fakestripe
from tests.fakestripe import API_KEY, StripeWorld
from tests.local_http import serving

pytestmark = pytest.mark.integration

PRODUCT = "prod_mailvet_tiers"
SUCCESS = "https://app.invalid/app/billing/success?cs={CHECKOUT_SESSION_ID}"
CANCEL = "https://app.invalid/app/billing/cancelled"
WHSEC = "whsec_test_gateway"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
stripe_world = fakestripe.stripe_world  # the fixtures
stripe_api = fakestripe.stripe_api


@pytest.fixture
async def gateway(stripe_api: StripeWorld) -> AsyncIterator[StripeGateway]:
    g = StripeGateway(API_KEY, api_base=stripe_api.api_base, max_network_retries=0)
    try:
        yield g
    finally:
        await g.aclose()


async def _http(method: str, address: str, **form: str) -> httpx.Response:
    """A plain request, with the key (what a test sets up beside the gateway)."""
    async with httpx.AsyncClient(headers=AUTH) as client:
        return await client.request(method, address, data=form or None)


async def _price(world: StripeWorld, **form: str) -> str:
    got = await _http("POST", f"{world.api_base}/v1/prices", **form)
    assert got.status_code == 200, got.text
    ident: str = got.json()["id"]
    return ident


async def _tier_price(world: StripeWorld, name: str, credits: int, amount: int) -> str:
    return await _price(
        world,
        product=PRODUCT,
        currency="usd",
        unit_amount=str(amount),
        nickname=name.title(),
        **{"recurring[interval]": "month", "metadata[credits]": str(credits)},
        **{"metadata[tier]": name},
    )


async def test_a_customer_is_made_with_the_account_in_its_metadata(
    gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    customer = await gateway.create_customer(account_id="acc-1", email="ann@example.com")
    assert customer.startswith("cus_")
    stored = (await _http("GET", f"{stripe_api.localstripe_url}/v1/customers/{customer}")).json()
    assert stored["email"] == "ann@example.com"
    assert stored["metadata"] == {"account_id": "acc-1"}


async def test_a_products_prices_are_listed_and_read_as_tiers(
    gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    starter = await _tier_price(stripe_api, "starter", 5_000, 2_900)
    await _tier_price(stripe_api, "pro", 50_000, 19_900)
    await _price(stripe_api, product="prod_other", currency="usd", unit_amount="100")
    prices = await gateway.prices(PRODUCT)
    assert sorted(p.metadata["tier"] for p in prices) == ["pro", "starter"]
    tiers = {t.name: t for p in prices if (t := tier_from_price(p)) is not None}
    assert tiers["starter"].price == starter
    assert tiers["starter"].monthly_credits == 5_000
    assert (tiers["starter"].amount, tiers["starter"].currency) == (2_900, "usd")
    assert tiers["starter"].label == "Starter"
    assert await gateway.prices("prod_nothing") == []


async def test_prices_are_read_past_one_page(
    gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    made = {await _tier_price(stripe_api, f"t{i}", i * 1000, 100 + i) for i in range(105)}
    assert {p.id for p in await gateway.prices(PRODUCT)} == made


async def test_a_pack_checkout_names_the_account_the_credits_and_the_amount(
    gateway: StripeGateway,
) -> None:
    customer = await gateway.create_customer(account_id="acc-2", email="bo@example.com")
    amount = pack_price(25_000, 1000)
    session = await gateway.pack_checkout(
        customer=customer,
        account_id="acc-2",
        credits=25_000,
        amount=amount,
        currency="usd",
        success_url=SUCCESS,
        cancel_url=CANCEL,
    )
    assert session.id.startswith("cs_test_")
    assert session.mode == "payment"
    assert session.url is not None and session.url.endswith(f"/pay/{session.id}")
    assert session.client_reference_id == "acc-2"
    assert session.metadata["credits"] == "25000"
    assert (session.amount_total, session.currency) == (25_000, "usd")
    again = await gateway.checkout_session(session.id)
    assert again == session


async def test_a_subscription_checkout_takes_a_tiers_price(
    gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    price = await _tier_price(stripe_api, "starter", 5_000, 2_900)
    customer = await gateway.create_customer(account_id="acc-3", email="cy@example.com")
    session = await gateway.subscription_checkout(
        customer=customer, account_id="acc-3", price=price, success_url=SUCCESS, cancel_url=CANCEL
    )
    assert (session.mode, session.customer, session.amount_total) == (
        "subscription",
        customer,
        2_900,
    )
    with pytest.raises(NotFound):
        await gateway.subscription_checkout(
            customer=customer,
            account_id="acc-3",
            price="price_missing",
            success_url=SUCCESS,
            cancel_url=CANCEL,
        )


async def test_a_portal_session_for_a_customer_and_none_for_a_stranger(
    gateway: StripeGateway,
) -> None:
    customer = await gateway.create_customer(account_id="acc-4", email="di@example.com")
    portal = await gateway.portal_session(customer=customer, return_url="https://app.invalid/b")
    assert portal.id.startswith("bps_test_")
    page = await _http("GET", portal.url)
    assert "https://app.invalid/b" in page.text
    with pytest.raises(NotFound) as missing:
        await gateway.portal_session(customer="cus_nobody", return_url="https://app.invalid/b")
    assert missing.value.status == 404


async def test_missing_objects_are_not_found(gateway: StripeGateway) -> None:
    for call in (
        gateway.subscription("sub_missing"),
        gateway.invoice("in_missing"),
        gateway.checkout_session("cs_test_missing"),
        gateway.charge("ch_missing"),
    ):
        with pytest.raises(NotFound):
            await call


async def test_a_bad_key_and_an_unreachable_stripe_are_payments_errors(
    stripe_api: StripeWorld,
) -> None:
    wrong = StripeGateway("sk_live_wrong", api_base=stripe_api.api_base, max_network_retries=0)
    try:
        with pytest.raises(PaymentsError) as refused:
            await wrong.prices(PRODUCT)
        assert refused.value.status == 401
        assert "sk_live_wrong" not in str(refused.value)
    finally:
        await wrong.aclose()
    nowhere = StripeGateway(API_KEY, api_base="http://127.0.0.1:9", max_network_retries=0)
    try:
        with pytest.raises(PaymentsError) as unreachable:
            await nowhere.create_customer(account_id="a", email="e@example.com")
        assert unreachable.value.status is None
    finally:
        await nowhere.aclose()


class _Receiver:
    """A webhook endpoint that verifies as the real one will, and keeps what it accepted."""

    def __init__(self) -> None:
        self.events: list[stripe.Event] = []

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        rcv: Any = receive
        snd: Any = send
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await rcv()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])  # type: ignore[call-overload]
        signature = headers.get(b"stripe-signature", b"").decode()
        try:
            self.events.append(stripe.Webhook.construct_event(body, signature, WHSEC))
            status = 200
        except stripe.SignatureVerificationError:
            status = 400
        await snd({"type": "http.response.start", "status": status, "headers": []})
        await snd({"type": "http.response.body", "body": b""})


async def _pay(world: StripeWorld, session: CheckoutSession) -> httpx.Response:
    assert session.url is not None
    async with httpx.AsyncClient() as client:
        page = await client.get(session.url)
        assert page.status_code == 200 and "id='pay'" in page.text
        return await client.post(session.url)


async def test_paying_a_pack_completes_it_and_sends_a_signed_event(
    gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    receiver = _Receiver()
    with serving(lambda _: receiver) as hook:
        await _http("POST", f"{stripe_api.api_base}/_fake/webhook", url=hook, secret=WHSEC)
        customer = await gateway.create_customer(account_id="acc-5", email="ed@example.com")
        session = await gateway.pack_checkout(
            customer=customer,
            account_id="acc-5",
            credits=1_000,
            amount=1_000,
            currency="usd",
            success_url=SUCCESS,
            cancel_url=CANCEL,
        )
        paid = await _pay(stripe_api, session)
    assert paid.status_code == 303
    assert paid.headers["location"].endswith(f"?cs={session.id}")
    done = await gateway.checkout_session(session.id)
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.payment_intent is not None and done.payment_intent.startswith("pi_")
    [event] = receiver.events
    parsed = event_from_payload(event.to_dict())
    assert parsed is not None and parsed.kind is EventKind.CHECKOUT_COMPLETED
    assert parsed.object == done
    # Checkout's post-payment invoice: the receipt the billing page lists
    [invoice] = await gateway.invoices(customer)
    assert (invoice.status, invoice.amount_paid, invoice.subscription) == ("paid", 1_000, None)
    assert invoice.hosted_invoice_url is not None
    assert await gateway.invoice(invoice.id) == invoice
    async with httpx.AsyncClient() as client:
        receipt = await client.get(invoice.hosted_invoice_url)
    assert receipt.status_code == 200 and "10.00 USD" in receipt.text


async def test_paying_a_tier_subscribes_and_its_objects_are_read_back(
    gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    price = await _tier_price(stripe_api, "starter", 5_000, 2_900)
    customer = await gateway.create_customer(account_id="acc-6", email="fa@example.com")
    session = await gateway.subscription_checkout(
        customer=customer, account_id="acc-6", price=price, success_url=SUCCESS, cancel_url=CANCEL
    )
    await _pay(stripe_api, session)
    done = await gateway.checkout_session(session.id)
    assert done.subscription is not None
    sub = await gateway.subscription(done.subscription)
    assert (sub.customer, sub.status, sub.price) == (customer, "active", price)
    assert sub.current_period_end is not None
    invoices = await gateway.invoices(customer)
    assert [i.subscription for i in invoices] == [sub.id]
    [invoice] = invoices
    assert invoice.price == price and invoice.amount_due == 2_900
    assert await gateway.invoice(invoice.id) == invoice
    sent = stripe_api.fake.webhooks_sent
    assert [e["type"] for e in sent] == ["checkout.session.completed"]
    assert json.loads(json.dumps(sent[0]))["data"]["object"]["subscription"] == sub.id


async def test_a_refunded_pack_charge_is_read_with_its_refund(
    gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    customer = await gateway.create_customer(account_id="acc-7", email="gu@example.com")
    session = await gateway.pack_checkout(
        customer=customer,
        account_id="acc-7",
        credits=2_000,
        amount=2_000,
        currency="usd",
        success_url=SUCCESS,
        cancel_url=CANCEL,
    )
    await _pay(stripe_api, session)
    done = await gateway.checkout_session(session.id)
    ls = stripe_api.localstripe_url
    intent = (await _http("GET", f"{ls}/v1/payment_intents/{done.payment_intent}")).json()
    charge_id = (
        intent["charges"]["data"][0]["id"] if "charges" in intent else intent["latest_charge"]
    )
    refund = await _http("POST", f"{ls}/v1/refunds", charge=charge_id, amount="500")
    assert refund.status_code == 200, refund.text
    charge = await gateway.charge(charge_id)
    assert (charge.amount, charge.amount_refunded, charge.refunded) == (2_000, 500, False)
    assert charge.payment_intent == done.payment_intent


async def test_a_customer_is_made_under_the_idempotency_key_given() -> None:
    """localstripe ignores Idempotency-Key: a Stripe of one route shows what the client sent."""
    sent: list[dict[str, str]] = []

    async def stripe_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        sent.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        body = json.dumps({"id": "cus_recorded", "object": "customer"}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    with serving(lambda _: stripe_app) as base:
        g = StripeGateway(API_KEY, api_base=base, max_network_retries=0)
        try:
            keyed = await g.create_customer(
                account_id="acc-9", email="ida@example.com", idempotency_key="mailvet-customer-9"
            )
            assert keyed == "cus_recorded"
            await g.create_customer(account_id="acc-9", email="ida@example.com")
        finally:
            await g.aclose()
    assert sent[0]["idempotency-key"] == "mailvet-customer-9"
    # none given: the client's own (a POST is retried safely), never ours
    assert sent[1].get("idempotency-key", "") != "mailvet-customer-9"
