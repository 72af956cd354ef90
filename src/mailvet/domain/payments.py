"""Payments: what billing needs from Stripe, as a port (`Payments`) and the records it answers.

The records hold only the fields billing decides on, in Stripe's own terms (ids, amounts in
the currency's smallest unit, Unix times); the adapters fill them from Stripe's objects:
adapters/payments/stripe_gateway.py over the official client, adapters/payments/memory.py
in memory for the service tests. The rules are in domain/billing.py.

- A customer is made on first need (`create_customer`, under an idempotency key: two first
  needs at once get one customer) and kept on the account.
- Checkout: a tier is a subscription to its price (`subscription_checkout`); a pack is a
  one-off payment (`pack_checkout`) with `client_reference_id` = the account id and
  `metadata.credits` = the credits bought. The customer is sent to `CheckoutSession.url`.
- The Billing Portal (`portal_session`): change or cancel the plan, payment methods.
- `prices(product)`: what `mailvet billing sync` mirrors into the tiers table.
- `subscription`, `invoice`, `checkout_session`, `charge`: Stripe's state now, fetched when
  an event is older than what is stored (events arrive out of order).
- `invoices(customer)`: the billing page's list, with the receipt links.

Pure: no I/O, nothing of the `stripe` package.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

CheckoutMode = Literal["payment", "subscription"]


class PaymentsError(Exception):
    """Stripe refused a call or could not be reached (the message says which, never a key)."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status  # Stripe's HTTP status; None: no answer (network)
        self.code = code  # Stripe's error code ("resource_missing", ...), "" when none


class NotFound(PaymentsError):
    """Stripe has no such object (404 resource_missing)."""


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """A price of a product. A tier is a monthly recurring price whose metadata says its
    credits (`metadata.credits`) and may name it (`metadata.tier`)."""

    id: str
    product: str
    unit_amount: int  # in the currency's smallest unit (cents)
    currency: str
    interval: str | None = None  # "month" for a subscription price, None for a one-off one
    nickname: str = ""
    active: bool = True
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class CheckoutSession(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # cs_...
    mode: CheckoutMode
    url: str | None = None  # where the customer pays (None once it is complete or expired)
    status: str = "open"  # open | complete | expired
    payment_status: str = "unpaid"  # paid | unpaid | no_payment_required
    customer: str | None = None
    client_reference_id: str | None = None  # the account id
    subscription: str | None = None  # mode=subscription, once complete
    payment_intent: str | None = None  # mode=payment: what a charge (and its refund) names
    amount_total: int | None = None
    currency: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class PortalSession(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # sub_...
    customer: str
    status: str  # incomplete | trialing | active | past_due | unpaid | canceled | ...
    price: str | None = None  # the price of its (first) item: the tier
    current_period_start: int | None = None
    current_period_end: int | None = None
    cancel_at: int | None = None  # when a cancellation takes effect (Unix time)
    cancel_at_period_end: bool = False
    ended_at: int | None = None


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # in_...
    customer: str
    status: str  # draft | open | paid | uncollectible | void
    subscription: str | None = None
    price: str | None = None  # the price of its first line (a tier's, for a subscription)
    amount_due: int = 0
    amount_paid: int = 0
    currency: str = ""
    created: int = 0
    period_start: int | None = None  # the billing period its subscription line covers
    period_end: int | None = None
    billing_reason: str = ""  # subscription_create | subscription_cycle | manual | ...
    # every line a proration: a plan changed mid-period, invoiced at once (no new period)
    proration: bool = False
    number: str | None = None
    hosted_invoice_url: str | None = None  # the receipt page
    invoice_pdf: str | None = None


class Charge(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # ch_...
    amount: int
    amount_refunded: int = 0  # cumulative: a second partial refund raises it
    currency: str = ""
    customer: str | None = None
    payment_intent: str | None = None  # a pack's, as its checkout session names it
    invoice: str | None = None  # a subscription's charge names its invoice
    refunded: bool = False  # refunded in full
    receipt_url: str | None = None


class Payments(Protocol):
    """Stripe, as billing uses it. Every method raises PaymentsError (NotFound for a
    missing object) when Stripe refuses or cannot be reached."""

    async def create_customer(
        self, *, account_id: str, email: str, idempotency_key: str | None = None
    ) -> str:
        """A new customer for the account (its id, `cus_...`), the account id in its metadata.
        `idempotency_key`: the same key again (within Stripe's 24 hours) answers the customer
        the first call made instead of making another."""
        ...

    async def subscription_checkout(
        self,
        *,
        customer: str,
        account_id: str,
        price: str,
        success_url: str,
        cancel_url: str,
    ) -> CheckoutSession:
        """A Checkout Session (mode=subscription) for one of the tier's price."""
        ...

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
        """A Checkout Session (mode=payment) for `credits` at `amount` (domain/billing's
        pack_price): client_reference_id = the account, metadata.credits = the credits."""
        ...

    async def portal_session(self, *, customer: str, return_url: str) -> PortalSession: ...

    async def prices(self, product: str) -> list[Price]:
        """Every price of the product, active or not (sync marks the inactive ones)."""
        ...

    async def subscription(self, subscription_id: str) -> Subscription: ...

    async def invoice(self, invoice_id: str) -> Invoice: ...

    async def checkout_session(self, session_id: str) -> CheckoutSession: ...

    async def charge(self, charge_id: str) -> Charge: ...

    async def invoices(self, customer: str, *, limit: int = 24) -> list[Invoice]:
        """The customer's latest invoices, newest first, with their receipt links."""
        ...
