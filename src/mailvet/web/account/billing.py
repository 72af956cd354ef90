"""The signed-in account's credits (/app/billing): the balance, what running jobs hold of
it, and the ledger's entries, newest first, a page at a time, each in words. The numbers
come from services/credits.py (the balance row every spend is decided on, and the entries
that moved it); buying credits (Stripe) is the billing issue's, and until then the page
says how credits are added."""

from __future__ import annotations

import math
from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromQuery
from litestar.response import Template

from mailvet.domain.credits import Entry, EntryKind
from mailvet.services import credits
from mailvet.services.paging import window
from mailvet.web.auth.common import NO_STORE
from mailvet.web.context import Web
from mailvet.web.sessions import requires_login, signed_in_id

BILLING_PAGE = "/app/billing"
ENTRIES_PER_PAGE = 25

ENTRY_TEXT: dict[EntryKind, str] = {
    EntryKind.SIGNUP_GRANT: "Credits of a new account",
    EntryKind.PURCHASE: "Credits bought",
    EntryKind.JOB_RESERVE: "A list started (its cost held)",
    EntryKind.JOB_SETTLE: "A list finished (what it was not charged, back)",
    EntryKind.REFUND: "Refund",
    EntryKind.SINGLE_CHECK: "One address checked",
    EntryKind.SINGLE_REFUND: "One address checked: credit back",
    EntryKind.ADMIN_ADJUSTMENT: "Adjusted by an administrator",
    EntryKind.SUBSCRIPTION_GRANT: "Credits of the plan's period",
    EntryKind.PAYMENT_REFUND: "A payment refunded (its credits taken back)",
}


def entry_row(entry: Entry) -> dict[str, Any]:
    """What the table shows of an entry: when, what in words, the amount, the list it
    belongs to and the reason an administrator gave (never who: an administrator's id)."""
    return {
        "created_at": entry.created_at,
        "text": ENTRY_TEXT[entry.kind],
        "amount": entry.amount,
        "job_id": entry.job_id,
        "reason": entry.reason if entry.kind is EntryKind.ADMIN_ADJUSTMENT else "",
    }


class BillingController(Controller):
    path = BILLING_PAGE
    include_in_schema = False
    guards = [requires_login]

    @get("/", name="billing_page")
    async def show(
        self, request: Request[Any, Any, Any], web: Web, page: FromQuery[int] = 1
    ) -> Template:
        account_id = signed_in_id(request)
        number = max(1, page)
        offset, limit = window((number - 1) * ENTRIES_PER_PAGE, ENTRIES_PER_PAGE)
        async with web.database.unit_of_work() as session:
            balance = await credits.balance(session, account_id)
            entries = await credits.history(session, account_id, limit=limit, offset=offset)
        return Template(
            "account/billing.html",
            context={
                "credits_on": web.settings.web.charging,
                "balance": balance,
                "rows": [entry_row(entry) for entry in entries.items],
                "page": number,
                "pages": max(1, math.ceil(entries.total / ENTRIES_PER_PAGE)),
                "total": entries.total,
                "has_more": entries.has_more,
            },
            headers=dict(NO_STORE),
        )
