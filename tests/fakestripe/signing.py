"""Stripe's webhook signature for the tests: `Stripe-Signature: t=<unix time>,v1=<hex
HMAC-SHA256(secret, f"{t}.{body}")>` (what stripe.Webhook.construct_event checks), so a test
can sign a payload as Stripe would, or sign it wrong. It is the scheme mailvet's own webhooks
use, so it is made by domain/webhooks.py `sign`; Stripe's library is what checks it."""

from __future__ import annotations

import time

from mailvet.domain.webhooks import sign


def signature(body: bytes, secret: str, *, at: int | None = None) -> str:
    """The Stripe-Signature header for `body` signed with `secret` at `at` (now if None)."""
    return sign(secret, body, timestamp=int(time.time()) if at is None else at)
