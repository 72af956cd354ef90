"""Stripe's webhook signature, made by hand for the tests: `Stripe-Signature:
t=<unix time>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>` (what stripe.Webhook.construct_event
checks), so a test can sign a payload as Stripe would, or sign it wrong."""

from __future__ import annotations

import hashlib
import hmac
import time


def signature(body: bytes, secret: str, *, at: int | None = None) -> str:
    """The Stripe-Signature header for `body` signed with `secret` at `at` (now if None)."""
    ts = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"
