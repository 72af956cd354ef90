"""The Payments port in memory, for the service tests: `MemoryPayments` records what was asked
(`customers`, `sessions`, `portals`; a customer's idempotency key in `idempotent`, honoured
as Stripe does) and answers from what a test put in (`price_list`,
`subscriptions`, `invoice_list`, `charges`); `complete(session_id)` pays a checkout as the
customer would. A missing object is NotFound, as on Stripe; `fail_with` makes every call fail.
"""

from __future__ import annotations

import itertools
from typing import TypeVar

import msgspec

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

T = TypeVar("T")


class MemoryPayments:
    def __init__(self, *, base_url: str = "https://checkout.invalid") -> None:
        self.base_url = base_url
        self.customers: dict[str, dict[str, str]] = {}  # id -> {"account_id", "email"}
        self.sessions: dict[str, CheckoutSession] = {}
        self.portals: dict[str, PortalSession] = {}
        self.price_list: dict[str, Price] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.invoice_list: dict[str, Invoice] = {}
        self.charges: dict[str, Charge] = {}
        self.fail_with: PaymentsError | None = None
        self.idempotent: dict[str, str] = {}  # idempotency key -> the customer it made
        self._ids = itertools.count(1)

    def _new(self, prefix: str) -> str:
        return f"{prefix}_mem_{next(self._ids)}"

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def create_customer(
        self, *, account_id: str, email: str, idempotency_key: str | None = None
    ) -> str:
        self._check()
        if idempotency_key is not None and idempotency_key in self.idempotent:
            return self.idempotent[idempotency_key]  # Stripe answers the first call again
        ident = self._new("cus")
        self.customers[ident] = {"account_id": account_id, "email": email}
        if idempotency_key is not None:
            self.idempotent[idempotency_key] = ident
        return ident

    async def subscription_checkout(
        self, *, customer: str, account_id: str, price: str, success_url: str, cancel_url: str
    ) -> CheckoutSession:
        self._check()
        self._customer(customer)
        found = self.price_list.get(price)
        if found is None or found.interval is None:
            raise NotFound(f"No such recurring price: '{price}'", status=404)
        return self._session(
            "subscription", customer, account_id, found.unit_amount, found.currency, {}
        )

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
        self._check()
        self._customer(customer)
        metadata = {"credits": str(credits), "account_id": account_id}
        return self._session("payment", customer, account_id, amount, currency, metadata)

    def _session(
        self,
        mode: str,
        customer: str,
        account_id: str,
        amount: int,
        currency: str,
        metadata: dict[str, str],
    ) -> CheckoutSession:
        ident = self._new("cs")
        session = CheckoutSession(
            id=ident,
            mode="subscription" if mode == "subscription" else "payment",
            url=f"{self.base_url}/pay/{ident}",
            customer=customer,
            client_reference_id=account_id,
            amount_total=amount,
            currency=currency,
            metadata=metadata,
        )
        self.sessions[ident] = session
        return session

    def complete(self, session_id: str) -> CheckoutSession:
        """The customer paid: the session is complete (a pack's payment intent named)."""
        session = self.sessions[session_id]
        intent = self._new("pi") if session.mode == "payment" else None
        done = msgspec.structs.replace(
            session, status="complete", payment_status="paid", url=None, payment_intent=intent
        )
        self.sessions[session_id] = done
        return done

    async def portal_session(self, *, customer: str, return_url: str) -> PortalSession:
        self._check()
        self._customer(customer)
        ident = self._new("bps")
        portal = PortalSession(id=ident, url=f"{self.base_url}/portal/{ident}")
        self.portals[ident] = portal
        return portal

    async def prices(self, product: str) -> list[Price]:
        self._check()
        return [p for p in self.price_list.values() if p.product == product]

    async def subscription(self, subscription_id: str) -> Subscription:
        self._check()
        return _get(self.subscriptions, subscription_id, "subscription")

    async def invoice(self, invoice_id: str) -> Invoice:
        self._check()
        return _get(self.invoice_list, invoice_id, "invoice")

    async def checkout_session(self, session_id: str) -> CheckoutSession:
        self._check()
        return _get(self.sessions, session_id, "checkout.session")

    async def charge(self, charge_id: str) -> Charge:
        self._check()
        return _get(self.charges, charge_id, "charge")

    async def invoices(self, customer: str, *, limit: int = 24) -> list[Invoice]:
        self._check()
        mine = [i for i in self.invoice_list.values() if i.customer == customer]
        return sorted(mine, key=lambda i: i.created, reverse=True)[:limit]

    def _customer(self, customer: str) -> None:
        if customer not in self.customers:
            raise NotFound(f"No such customer: '{customer}'", status=404, code="resource_missing")


def _get(found: dict[str, T], ident: str, kind: str) -> T:
    if ident not in found:
        raise NotFound(f"No such {kind}: '{ident}'", status=404, code="resource_missing")
    return found[ident]
