"""Billing in the browser (issue 10): the billing page of a signed-in account and its
Stripe Checkout, Billing Portal and return pages (pages.py), and Stripe's webhook
(webhook.py, POST /billing/stripe/webhook); the pricing page is public
(web/public/controllers.py, reading the tiers through services/billing_checkout.py).

`billing_router(ports)` is the area for `create_app(..., areas=[...])` (web/site.py), with
the same `AuthPorts` as the sign-in pages; the Payments port is the web context's
(`web.payments`, None when MAILVET_BILLING=off).
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from mailvet.web.auth.ports import AuthPorts
from mailvet.web.billing.pages import BillingController
from mailvet.web.billing.webhook import stripe_webhook_router

__all__ = ["billing_router"]


def billing_router(ports: AuthPorts) -> Router:
    def provide_auth() -> AuthPorts:
        return ports

    return Router(
        path="/",
        route_handlers=[BillingController, stripe_webhook_router()],
        dependencies={"auth": Provide(provide_auth, sync_to_thread=False)},
        include_in_schema=False,
    )
