"""Stripe's webhook events as Stripe sends them, for the tests: the JSON of each object billing
reads (API version 2025+: an invoice's subscription at `parent.subscription_details`, its line's
price at `lines.data[0].pricing.price_details.price`, a subscription's period on
`items.data[0]`), the event around it, and the signed request (`signed`: the body and its
`Stripe-Signature`, made by tests/fakestripe/signing.py).

Every builder answers a plain dict, so a test can change any field before it is sent."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.fakestripe.signing import signature

Json = dict[str, Any]
API_VERSION = "2025-08-27.basil"


def checkout_session(
    ident: str,
    *,
    account_id: str | None,
    customer: str | None,
    mode: str = "payment",
    credits: int | None = 1_000,
    amount_total: int = 1_000,
    payment_status: str = "paid",
    payment_intent: str | None = None,
    subscription: str | None = None,
) -> Json:
    """A Checkout Session as `checkout.session.completed` carries it; a pack (mode=payment)
    names its payment intent (`pi_<session>` unless given) and `metadata.credits`."""
    metadata: Json = {}
    if account_id is not None:
        metadata["account_id"] = account_id
    if mode == "payment" and credits is not None:
        metadata["credits"] = str(credits)
    return {
        "id": ident,
        "object": "checkout.session",
        "mode": mode,
        "status": "complete",
        "payment_status": payment_status,
        "customer": customer,
        "client_reference_id": account_id,
        "subscription": subscription if mode == "subscription" else None,
        "payment_intent": (payment_intent or f"pi_{ident}") if mode == "payment" else None,
        "amount_total": amount_total,
        "currency": "usd",
        "metadata": metadata,
        "url": None,
        "livemode": False,
    }


def subscription(
    ident: str,
    *,
    customer: str,
    price: str,
    status: str = "active",
    period_start: int,
    period_end: int,
    cancel_at: int | None = None,
    cancel_at_period_end: bool = False,
    ended_at: int | None = None,
) -> Json:
    """A subscription of one item; its period on the item (API 2025+, not at the top)."""
    return {
        "id": ident,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "cancel_at": cancel_at,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": ended_at,
        "ended_at": ended_at,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{ident}",
                    "object": "subscription_item",
                    "price": {"id": price, "object": "price", "recurring": {"interval": "month"}},
                    "quantity": 1,
                    "current_period_start": period_start,
                    "current_period_end": period_end,
                }
            ],
            "has_more": False,
        },
        "metadata": {},
        "livemode": False,
    }


def invoice(
    ident: str,
    *,
    customer: str,
    subscription: str | None,
    price: str,
    period_start: int,
    period_end: int,
    status: str = "paid",
    amount: int = 2_900,
    billing_reason: str = "subscription_cycle",
) -> Json:
    """A subscription's invoice: the subscription under `parent.subscription_details`, its
    line's price under `pricing.price_details` (API 2025+)."""
    paid = amount if status == "paid" else 0
    parent: Json | None = None
    if subscription is not None:
        parent = {
            "type": "subscription_details",
            "subscription_details": {"subscription": subscription, "metadata": {}},
        }
    return {
        "id": ident,
        "object": "invoice",
        "customer": customer,
        "status": status,
        "parent": parent,
        "amount_due": amount,
        "amount_paid": paid,
        "currency": "usd",
        "created": period_start,
        "period_start": period_start,
        "period_end": period_end,
        "billing_reason": billing_reason,
        "number": f"N-{ident}",
        "hosted_invoice_url": f"https://invoice.stripe.test/{ident}",
        "invoice_pdf": f"https://invoice.stripe.test/{ident}.pdf",
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": f"il_{ident}",
                    "object": "line_item",
                    "amount": amount,
                    "period": {"start": period_start, "end": period_end},
                    "pricing": {
                        "type": "price_details",
                        "price_details": {"price": price, "product": "prod_credits"},
                    },
                }
            ],
            "has_more": False,
        },
        "livemode": False,
    }


def charge(
    ident: str,
    *,
    amount: int,
    amount_refunded: int,
    payment_intent: str | None,
    customer: str | None = None,
    invoice: str | None = None,
) -> Json:
    """A charge as `charge.refunded` carries it: `amount_refunded` is cumulative. No `invoice`
    field (Stripe removed it in API 2025-03-31, so a subscription's charge does not say it is
    one) unless `invoice` is given: the shape of an older API version."""
    obj: Json = {
        "id": ident,
        "object": "charge",
        "amount": amount,
        "amount_refunded": amount_refunded,
        "refunded": amount_refunded >= amount,
        "currency": "usd",
        "customer": customer,
        "payment_intent": payment_intent,
        "receipt_url": f"https://pay.stripe.test/receipts/{ident}",
        "livemode": False,
    }
    if invoice is not None:
        obj["invoice"] = invoice
    return obj


def event(ident: str, kind: str, obj: Json, *, created: int) -> Json:
    """The event Stripe posts: `type`, `created`, `data.object`."""
    return {
        "id": ident,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "type": kind,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj, "previous_attributes": {}},
    }


def body_of(payload: Json | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def signed(payload: Json | bytes, secret: str, *, at: int | None = None) -> tuple[bytes, Json]:
    """The body of `payload` and the headers Stripe sends it with, signed with `secret` at
    `at` (now if None)."""
    body = body_of(payload)
    when = int(time.time()) if at is None else at
    headers = {
        "stripe-signature": signature(body, secret, at=when),
        "content-type": "application/json",
    }
    return body, headers
