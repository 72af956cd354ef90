"""The billing page's invoices, kept a minute per account in the web process (issue 10).

/app/billing lists the account's invoices from Stripe (Payments.invoices); without a cache
every render asked Stripe, the 422 re-renders of its forms too, so one signed-in user
reloading in a loop could use up the Stripe account's rate limit (every account's). A list
is kept `ttl` seconds (60 by default) for the account and the customer it was read for,
and forgotten when the account starts a Checkout, opens the portal or returns to the
success page (it may have paid: its new invoice is listed at once). At most `size`
accounts are kept (the oldest dropped first). A failure is not kept: the next render asks
again.

Per process, in memory (the web context holds one): two web processes may each ask Stripe
once a minute for one account. Pure Python: no I/O, nothing of the `stripe` package.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mailvet.domain.payments import Invoice

INVOICES_TTL = 60.0  # seconds
INVOICES_KEPT = 10_000  # accounts


@dataclass(frozen=True)
class _Kept:
    customer: str
    until: float
    invoices: tuple[Invoice, ...]


class InvoiceCache:
    def __init__(
        self,
        ttl: float = INVOICES_TTL,
        *,
        size: int = INVOICES_KEPT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._kept: dict[str, _Kept] = {}

    def get(self, account_id: str, customer: str) -> list[Invoice] | None:
        """The account's list read for `customer` less than `ttl` seconds ago, else None."""
        kept = self._kept.get(account_id)
        if kept is None or kept.customer != customer or kept.until <= self._clock():
            return None
        return list(kept.invoices)

    def put(self, account_id: str, customer: str, invoices: list[Invoice]) -> None:
        self._kept.pop(account_id, None)
        while len(self._kept) >= self.size:
            del self._kept[next(iter(self._kept))]  # the oldest put
        self._kept[account_id] = _Kept(customer, self._clock() + self.ttl, tuple(invoices))

    def forget(self, account_id: str) -> None:
        self._kept.pop(account_id, None)
