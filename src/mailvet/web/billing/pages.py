"""The billing pages of a signed-in account (issue 10 §1), over services/billing_checkout.py:

- GET /app/billing: balance and held credits, the tier and its renewal or cancellation
  date, the invoices with their receipt links (or "unavailable" when Stripe cannot be
  reached; the list kept a minute per account in `web.invoice_cache`, forgotten when the
  account goes to Checkout, the portal or the success page), the ledger's entries in words
  (jobs linked), a page at a time, the buy-credits form (`?credits=N` fills it: the pricing
  page's form of a signed-out visitor leads here through the sign-in), a subscribe button
  per tier or the manage-plan button.
- POST /app/billing/checkout/pack (credits), POST /app/billing/checkout/subscription
  (tier), POST /app/billing/portal: 303 to Stripe (Checkout, or the Billing Portal).
  Wrong input: the page again, 422, the message on the form, nothing asked of Stripe.
  Stripe failing: a "payment is unavailable" page, 503, nothing stored. Counted per
  account (CHECKOUT_PER_ACCOUNT, a 429 beyond it).
- GET /app/billing/success?session_id=cs_...: what Stripe says of the account's own
  session (another's, or an unknown one: 404), counted per account (SUCCESS_PER_ACCOUNT:
  each hit asks Stripe); GET /app/billing/cancelled.

The billing page's own Content-Security-Policy lets its forms reach Stripe's pages: a browser
applies `form-action` to the redirects of a submission too, so the site's `'self'` alone would
stop the 303 to Checkout (`stripe_page_origins`).

With billing off (MAILVET_BILLING=off: `web.payments` None) the page shows the balance and
the history and says an administrator grants credits; the POSTs and return pages answer
404. Every form carries the CSRF token (the app's CSRF middleware checks every POST here).
Credits are added by the webhook alone (web/billing/webhook.py), never by these pages.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from mailvet.domain import money as amounts
from mailvet.domain.billing import MAX_PACK, MIN_PACK, PACK_UNIT
from mailvet.domain.credits import Entry, EntryKind
from mailvet.domain.payments import Payments, PaymentsError
from mailvet.services import billing_checkout
from mailvet.services.billing_checkout import CheckoutRefused, SessionNotFound
from mailvet.services.paging import window
from mailvet.services.throttle import Limit
from mailvet.web.auth.common import NO_STORE, see_other
from mailvet.web.auth.schemas import Fields
from mailvet.web.context import Web, WebContext
from mailvet.web.security import content_security_policy, origin_of
from mailvet.web.sessions import requires_login, signed_in_id
from mailvet.web.throttle import count, raise_if_refused

BILLING_PAGE = billing_checkout.BILLING_PATH
ENTRIES_PER_PAGE = 25
DEFAULT_PACK = 10_000
TIER_TEXT = 64  # characters of a tier name read from a form
CHECKOUT_PER_ACCOUNT = Limit("billing-checkout", 20, 3600)  # Stripe sessions an hour
# the success page asks Stripe for its session: a reload in a loop must not use up the
# Stripe account's rate limit
SUCCESS_PER_ACCOUNT = Limit("billing-success", 60, 3600)
MAX_PAGE = 1_000_000  # a page of the history beyond any account's (and within SQL's integers)
# ?page=N: a larger N is refused with 400 (10**20 overflowed the query's OFFSET: a 500)
PageNumber = Annotated[int, QueryParameter(name="page", le=MAX_PAGE)]

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
STRIPE_API = "https://api.stripe.com"
STRIPE_PAGES = ("https://checkout.stripe.com", "https://billing.stripe.com")


def checkout_policy(web: WebContext) -> dict[str, str]:
    """The Content-Security-Policy header of a page whose forms go on to Stripe (this one,
    and the pricing page's buttons of a signed-in customer)."""
    policy = content_security_policy(
        recaptcha=bool(web.settings.web.recaptcha_site_key), form_action=stripe_page_origins(web)
    )
    return {"Content-Security-Policy": policy}


def stripe_page_origins(web: WebContext) -> list[str]:
    """Where the billing page's forms are sent on to: Stripe's Checkout and Billing Portal
    origins, or, on a Stripe of its own (MAILVET_STRIPE_API_BASE elsewhere: the tests'), the
    origin of that one's pages. None with billing off."""
    if web.payments is None:
        return []
    base = web.settings.billing.api_base.rstrip("/")
    return list(STRIPE_PAGES) if base == STRIPE_API else [origin_of(base)]


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


def money(amount: int, currency: str) -> str:
    """An amount as the pages show it: "$10", "$29.90", "¥500", "12.50 CHF" (domain/money.py's
    short form: whole amounts without decimals)."""
    return amounts.money(amount, currency, short=True)


def date_of(unix: int | None) -> str:
    """A Unix time as its UTC date ("2026-05-01"; "" for none)."""
    return amounts.day(unix, iso=True)


def receipt_link(url: str | None) -> str:
    """An invoice's receipt page, only when it is a web address (never `javascript:`)."""
    return url if url and url.startswith(("https://", "http://")) else ""


def pack_terms(web: WebContext) -> dict[str, Any]:
    """The packs' price and bounds as the pages say them, from the settings."""
    billing = web.settings.billing
    return {
        "unit_price": money(billing.credit_unit_price_cents, billing.credit_currency),
        "unit": PACK_UNIT,
        "min_pack": MIN_PACK,
        "max_pack": MAX_PACK,
    }


def _payments(web: WebContext) -> Payments:
    if web.payments is None:
        raise NotFoundException("billing is off")
    return web.payments


def _unavailable(error: PaymentsError) -> Template:
    return Template(
        "billing/unavailable.html",
        context={"status": error.status},
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers=dict(NO_STORE),
    )


async def _counted(
    request: Request[Any, Any, Any], web: WebContext, rule: Limit = CHECKOUT_PER_ACCOUNT
) -> str:
    """The signed-in account, once `rule` has counted it (429 over it)."""
    account_id = signed_in_id(request)
    raise_if_refused(await count(web, rule, account_id))
    return account_id


def _to_stripe(web: WebContext, account_id: str, url: str) -> Redirect:
    """The 303 to Checkout or the portal; the account's invoices are asked of Stripe again
    on the next render (it may pay, or change its plan, there)."""
    web.invoice_cache.forget(account_id)
    return see_other(url)


class BillingController(Controller):
    path = BILLING_PAGE
    include_in_schema = False
    guards = [requires_login]

    @get("/", name="billing_page")
    async def show(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        page: PageNumber = 1,
        credits: FromQuery[str] = "",
    ) -> Template:
        form = {"credits": credits[: billing_checkout.CREDITS_TEXT]}
        return await _page(request, web, page=page, form=form)

    @post("/checkout/pack", status_code=HTTP_200_OK)
    async def pack(self, request: Request[Any, Any, Any], web: Web) -> Template | Redirect:
        payments = _payments(web)
        account_id = await _counted(request, web)
        text = (await Fields.of(request)).text("credits", billing_checkout.CREDITS_TEXT)
        try:
            url = await billing_checkout.start_pack(
                web.database, payments, web.settings, account_id, text, clock=web.clock
            )
        except CheckoutRefused as problem:
            return await _page(request, web, form={"credits": text}, refused=problem)
        except PaymentsError as error:
            return _unavailable(error)
        return _to_stripe(web, account_id, url)

    @post("/checkout/subscription", status_code=HTTP_200_OK)
    async def subscription(self, request: Request[Any, Any, Any], web: Web) -> Template | Redirect:
        payments = _payments(web)
        account_id = await _counted(request, web)
        name = (await Fields.of(request)).text("tier", TIER_TEXT)
        try:
            url = await billing_checkout.start_subscription(
                web.database, payments, web.settings, account_id, name, clock=web.clock
            )
        except CheckoutRefused as problem:
            return await _page(request, web, refused=problem)
        except PaymentsError as error:
            return _unavailable(error)
        return _to_stripe(web, account_id, url)

    @post("/portal", status_code=HTTP_200_OK)
    async def portal(self, request: Request[Any, Any, Any], web: Web) -> Template | Redirect:
        payments = _payments(web)
        account_id = await _counted(request, web)
        try:
            url = await billing_checkout.portal(
                web.database, payments, web.settings, account_id, clock=web.clock
            )
        except PaymentsError as error:
            return _unavailable(error)
        return _to_stripe(web, account_id, url)

    @get("/success", name="billing_success")
    async def success(
        self, request: Request[Any, Any, Any], web: Web, session_id: FromQuery[str] = ""
    ) -> Template:
        payments = _payments(web)
        account_id = await _counted(request, web, SUCCESS_PER_ACCOUNT)
        web.invoice_cache.forget(account_id)  # back from Checkout: its invoice is new
        try:
            outcome = await billing_checkout.checkout_outcome(
                web.database, payments, account_id, session_id[:300]
            )
        except SessionNotFound:
            raise NotFoundException("no such checkout session") from None
        except PaymentsError as error:
            return _unavailable(error)
        return Template(
            "billing/success.html", context={"outcome": outcome}, headers=dict(NO_STORE)
        )

    @get("/cancelled", name="billing_cancelled")
    async def cancelled(self, web: Web) -> Template:
        _payments(web)
        return Template("billing/cancelled.html", headers=dict(NO_STORE))


async def _page(
    request: Request[Any, Any, Any],
    web: WebContext,
    *,
    page: int = 1,
    form: dict[str, str] | None = None,
    refused: CheckoutRefused | None = None,
) -> Template:
    """The billing page: 200; 422 with the refusal on its form."""
    number = max(1, page)
    offset, limit = window((number - 1) * ENTRIES_PER_PAGE, ENTRIES_PER_PAGE)
    seen = await billing_checkout.overview(
        web.database,
        web.payments,
        signed_in_id(request),
        limit=limit,
        offset=offset,
        cache=web.invoice_cache,
    )
    history = seen.history
    errors = {refused.field: str(refused)} if refused is not None else {}
    context = {
        "billing_on": web.payments is not None,
        "credits_on": web.settings.web.charging,
        "seen": seen,
        "balance": seen.balance,
        "rows": [entry_row(entry) for entry in history.items],
        "page": number,
        "pages": max(1, math.ceil(history.total / ENTRIES_PER_PAGE)),
        "total": history.total,
        "has_more": history.has_more,
        "form": {"credits": "", **(form or {})},
        "default_pack": DEFAULT_PACK,
        "errors": errors,
        "money": money,
        "receipt_link": receipt_link,
        "date_of": date_of,
        **pack_terms(web),
    }
    status = HTTP_422_UNPROCESSABLE_ENTITY if errors else HTTP_200_OK
    headers = {**NO_STORE, **checkout_policy(web)}
    return Template("billing/billing.html", context=context, status_code=status, headers=headers)
