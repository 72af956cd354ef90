"""The Payments port over Stripe's official client (stripe 16): `StripeGateway`.

One `stripe.StripeClient` per gateway, its async methods (`client.v1.<resource>.<verb>_async`)
over `stripe.HTTPXClient` (httpx, as the rest of mailvet), `max_network_retries` from
MAILVET_STRIPE_MAX_NETWORK_RETRIES (the client retries a network failure, a 409 or a 5xx
with an idempotency key of its own), each try waiting at most `timeout` seconds
(MAILVET_STRIPE_TIMEOUT), the API base from MAILVET_STRIPE_API_BASE (the tests
point it at tests/fakestripe). `aclose()` closes its HTTP connections.

Stripe's objects (not dicts in 16.x) are read through `.to_dict()` into domain/payments.py's
records by the `*_record` functions, which take either the API's shapes or the older ones
localstripe answers (the subscription of an invoice at `parent.subscription_details` or at
the top; a subscription's period on its item or at the top; an invoice line's price under
`pricing.price_details` or `price`/`plan`). `event_from_payload` reads a verified webhook
event (stripe.Webhook.construct_event's, as a dict) into a domain BillingEvent.

Errors come out as PaymentsError (NotFound for Stripe's 404); the message is Stripe's, which
never holds the key. Logs: the call's name and ids, never a key or an address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import stripe

from mailvet.domain.billing import OBJECT_OF, BillingEvent, EventKind, EventObject
from mailvet.domain.payments import (
    Charge,
    CheckoutSession,
    Invoice,
    NotFound,
    PaymentsError,
    PortalSession,
    Price,
    Subscription,
)
from mailvet.logs import logger

T = TypeVar("T")
Data = Mapping[str, Any]
DEFAULT_TIMEOUT = 10.0  # seconds one call to Stripe waits (MAILVET_STRIPE_TIMEOUT's default)


class _HTTPXClient(stripe.HTTPXClient):
    """stripe.HTTPXClient sending the encoded form as `content=`: stripe 16.1 passes it as
    `data=`, which httpx 0.28 deprecates for raw bytes (a DeprecationWarning on every call, an
    error under the tests' warning filter); the bytes sent are the same."""

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        kwargs.pop("data", None)
        if post_data:
            kwargs["content"] = post_data
        return [args, kwargs]


class StripeGateway:
    """Payments on Stripe (see the module's docstring)."""

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str = "https://api.stripe.com",
        max_network_retries: int = 2,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._http = _HTTPXClient(timeout=timeout)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")},
            http_client=self._http,
            max_network_retries=max_network_retries,
        )

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_customer(
        self, *, account_id: str, email: str, idempotency_key: str | None = None
    ) -> str:
        params: Any = {"email": email, "metadata": {"account_id": account_id}}
        options: Any = {"idempotency_key": idempotency_key} if idempotency_key else {}
        customer = await self._call(
            "create_customer", self._client.v1.customers.create_async(params, options)
        )
        logger(__name__).info(
            "stripe_customer_created", account_id=account_id, customer=customer.id
        )
        return str(customer.id)

    async def subscription_checkout(
        self,
        *,
        customer: str,
        account_id: str,
        price: str,
        success_url: str,
        cancel_url: str,
    ) -> CheckoutSession:
        params: Any = {
            "mode": "subscription",
            "customer": customer,
            "client_reference_id": account_id,
            "line_items": [{"price": price, "quantity": 1}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "subscription_data": {"metadata": {"account_id": account_id}},
        }
        got = await self._call(
            "subscription_checkout", self._client.v1.checkout.sessions.create_async(params)
        )
        return checkout_record(got.to_dict())

    async def pack_checkout(
        self,
        *,
        customer: str,
        account_id: str,
        credits: int,
        amount: int,
        currency: str,
        success_url: str,
        cancel_url: str,
    ) -> CheckoutSession:
        params: Any = {
            "mode": "payment",
            "customer": customer,
            "client_reference_id": account_id,
            "metadata": {"credits": str(credits), "account_id": account_id},
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency,
                        "unit_amount": amount,
                        "product_data": {"name": f"{credits:,} credits"},
                    },
                }
            ],
            "success_url": success_url,
            "cancel_url": cancel_url,
            # a paid invoice after the payment: the receipt the billing page lists
            "invoice_creation": {
                "enabled": True,
                "invoice_data": {"description": f"{credits:,} credits"},
            },
        }
        got = await self._call(
            "pack_checkout", self._client.v1.checkout.sessions.create_async(params)
        )
        return checkout_record(got.to_dict())

    async def portal_session(self, *, customer: str, return_url: str) -> PortalSession:
        params: Any = {"customer": customer, "return_url": return_url}
        got = await self._call(
            "portal_session", self._client.v1.billing_portal.sessions.create_async(params)
        )
        return PortalSession(id=str(got.id), url=str(got.url))

    async def prices(self, product: str) -> list[Price]:
        found: list[Price] = []
        params: dict[str, Any] = {"product": product, "limit": 100}
        while True:
            page = await self._call("prices", self._client.v1.prices.list_async(params))  # type: ignore[arg-type]
            data = page.to_dict()
            found.extend(price_record(p) for p in data["data"])
            if not data.get("has_more") or not data["data"]:
                return found
            params["starting_after"] = data["data"][-1]["id"]

    async def subscription(self, subscription_id: str) -> Subscription:
        got = await self._call(
            "subscription", self._client.v1.subscriptions.retrieve_async(subscription_id)
        )
        return subscription_record(got.to_dict())

    async def invoice(self, invoice_id: str) -> Invoice:
        got = await self._call("invoice", self._client.v1.invoices.retrieve_async(invoice_id))
        return invoice_record(got.to_dict())

    async def checkout_session(self, session_id: str) -> CheckoutSession:
        got = await self._call(
            "checkout_session", self._client.v1.checkout.sessions.retrieve_async(session_id)
        )
        return checkout_record(got.to_dict())

    async def charge(self, charge_id: str) -> Charge:
        got = await self._call("charge", self._client.v1.charges.retrieve_async(charge_id))
        return charge_record(got.to_dict())

    async def invoices(self, customer: str, *, limit: int = 24) -> list[Invoice]:
        params: Any = {"customer": customer, "limit": limit}
        page = await self._call("invoices", self._client.v1.invoices.list_async(params))
        records = [invoice_record(i) for i in page.to_dict()["data"]]
        return sorted(records, key=lambda i: i.created, reverse=True)

    async def _call(self, name: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except stripe.StripeError as error:
            status = error.http_status
            code = str(error.code or "")
            logger(__name__).warning(
                "stripe_call_failed", call=name, status=status, code=code, kind=type(error).__name__
            )
            message = error.user_message or str(error) or type(error).__name__
            if status == 404:
                raise NotFound(message, status=status, code=code) from error
            raise PaymentsError(message, status=status, code=code) from error


# --- Stripe's objects as records -----------------------------------------------------------------


def _id_of(value: object) -> str | None:
    """An id, whether Stripe gave the id or the expanded object."""
    if isinstance(value, Mapping):
        found = value.get("id")
        return str(found) if found is not None else None
    return str(value) if value else None


def _first(data: Data, key: str) -> Data:
    listed = data.get(key) or {}
    items = listed.get("data") if isinstance(listed, Mapping) else None
    return items[0] if items else {}


def _period_line(data: Data) -> tuple[Data, bool]:
    """The invoice's line of its subscription's period, and whether every line is a
    proration (a plan changed mid-period): the first line that is no proration, else the
    first line. Stripe puts proration lines first on the invoice after a change."""
    listed = data.get("lines") or {}
    lines = listed.get("data") if isinstance(listed, Mapping) else None
    if not lines:
        return {}, False
    for line in lines:
        if not _is_proration(line):
            return line, False
    return lines[0], True


def _is_proration(line: Data) -> bool:
    details = (line.get("parent") or {}).get("subscription_item_details") or {}
    return bool(line.get("proration") or details.get("proration"))


def _metadata(data: Data) -> dict[str, str]:
    return {str(k): str(v) for k, v in (data.get("metadata") or {}).items()}


def _int(value: object) -> int | None:
    if not isinstance(value, int | float | str) or not str(value).strip():
        return None
    number = int(value)
    if not -MAX_TIME < number < MAX_TIME:  # no amount or time of Stripe's is this large
        raise ValueError("a number out of range")
    return number


def _amount(value: object) -> int:
    return _int(value) or 0


def price_record(data: Data) -> Price:
    recurring = data.get("recurring") or {}
    return Price(
        id=str(data["id"]),
        product=_id_of(data.get("product")) or "",
        unit_amount=_amount(data.get("unit_amount")),
        currency=str(data.get("currency") or ""),
        interval=recurring.get("interval"),
        nickname=str(data.get("nickname") or ""),
        active=bool(data.get("active", True)),
        metadata=_metadata(data),
    )


def checkout_record(data: Data) -> CheckoutSession:
    mode = data.get("mode")
    return CheckoutSession(
        id=str(data["id"]),
        mode="subscription" if mode == "subscription" else "payment",
        url=data.get("url"),
        status=str(data.get("status") or "open"),
        payment_status=str(data.get("payment_status") or "unpaid"),
        customer=_id_of(data.get("customer")),
        client_reference_id=data.get("client_reference_id"),
        subscription=_id_of(data.get("subscription")),
        payment_intent=_id_of(data.get("payment_intent")),
        amount_total=_int(data.get("amount_total")),
        currency=data.get("currency"),
        metadata=_metadata(data),
    )


def subscription_record(data: Data) -> Subscription:
    item = _first(data, "items")
    price = _id_of(item.get("price")) or _id_of(item.get("plan")) or _id_of(data.get("plan"))
    return Subscription(
        id=str(data["id"]),
        customer=_id_of(data.get("customer")) or "",
        status=str(data.get("status") or ""),
        price=price,
        current_period_start=_int(
            item.get("current_period_start") or data.get("current_period_start")
        ),
        current_period_end=_int(item.get("current_period_end") or data.get("current_period_end")),
        cancel_at=_int(data.get("cancel_at")),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        ended_at=_int(data.get("ended_at")),
    )


def invoice_record(data: Data) -> Invoice:
    parent = data.get("parent") or {}
    details = parent.get("subscription_details") or {}
    subscription = _id_of(details.get("subscription")) or _id_of(data.get("subscription"))
    line, proration = _period_line(data)
    pricing = (line.get("pricing") or {}).get("price_details") or {}
    price = _id_of(pricing.get("price")) or _id_of(line.get("price")) or _id_of(line.get("plan"))
    period = line.get("period") or {}
    return Invoice(
        id=str(data["id"]),
        customer=_id_of(data.get("customer")) or "",
        status=str(data.get("status") or ""),
        subscription=subscription,
        price=price,
        amount_due=_amount(data.get("amount_due")),
        amount_paid=_amount(data.get("amount_paid")),
        currency=str(data.get("currency") or ""),
        created=_amount(data.get("created") or data.get("date")),
        period_start=_int(period.get("start") or data.get("period_start")),
        period_end=_int(period.get("end") or data.get("period_end")),
        billing_reason=str(data.get("billing_reason") or ""),
        proration=proration,
        number=data.get("number"),
        hosted_invoice_url=data.get("hosted_invoice_url"),
        invoice_pdf=data.get("invoice_pdf"),
    )


def charge_record(data: Data) -> Charge:
    return Charge(
        id=str(data["id"]),
        amount=_amount(data.get("amount")),
        amount_refunded=_amount(data.get("amount_refunded")),
        currency=str(data.get("currency") or ""),
        customer=_id_of(data.get("customer")),
        payment_intent=_id_of(data.get("payment_intent")),
        invoice=_id_of(data.get("invoice")),
        refunded=bool(data.get("refunded")),
        receipt_url=data.get("receipt_url"),
    )


RECORDS: Mapping[type[EventObject], Callable[[Data], EventObject]] = {
    CheckoutSession: checkout_record,
    Invoice: invoice_record,
    Subscription: subscription_record,
    Charge: charge_record,
}


class WebhookRefused(Exception):
    """A webhook body that is not a genuine, recent Stripe event (the message says why; the
    endpoint answers 400 and changes nothing)."""


MAX_TIME = 2**53  # a time or amount beyond this is none of Stripe's (nor fits a column)
WEBHOOK_TOLERANCE = 300  # seconds: stripe.Webhook's default, applied to both sides of now


def verify_event(
    payload: bytes,
    header: str | None,
    secret: str,
    *,
    now: float,
    tolerance: int = WEBHOOK_TOLERANCE,
) -> BillingEvent | None:
    """The event of a webhook body once `stripe.Webhook.construct_event` has verified its
    `Stripe-Signature` with the endpoint's secret (and that it is at most `tolerance` seconds
    old); a signature time more than `tolerance` ahead of `now` is refused too (the library
    bounds only the past). None: a genuine event of a type billing does not handle. Raises
    WebhookRefused for a missing, wrong or stale signature, or a body that is not an event of
    the shape Stripe sends."""
    try:
        event = stripe.Webhook.construct_event(payload, header, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as exc:
        raise WebhookRefused(str(exc).split(";")[0]) from None
    except (ValueError, TypeError, AttributeError):  # not UTF-8, not JSON, not a JSON object
        raise WebhookRefused("the body is not a JSON event") from None
    if _signed_at(header or "") > now + tolerance:
        raise WebhookRefused("the signature's timestamp is in the future")
    try:
        return event_from_payload(event.to_dict())
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise WebhookRefused(
            f"not an event of the shape Stripe sends ({type(exc).__name__})"
        ) from None


def _signed_at(header: str) -> int:
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            return int(value)
    return 0


def event_from_payload(event: Data) -> BillingEvent | None:
    """A verified event (a dict: `construct_event(...).to_dict()` or the JSON body) as a
    BillingEvent; None for a type billing does not handle."""
    try:
        kind = EventKind(str(event.get("type")))
    except ValueError:
        return None
    obj = RECORDS[OBJECT_OF[kind]](event["data"]["object"])
    created = int(event["created"])
    if not 0 <= created < MAX_TIME:
        raise ValueError("an event's time is a Unix time")
    return BillingEvent(id=str(event["id"]), kind=kind, created=created, object=obj)
