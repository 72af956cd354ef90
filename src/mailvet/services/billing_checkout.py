"""Billing, the customer's side (issue 10 §1): the Stripe customer of an account, Checkout
for a pack or a tier, the Billing Portal, the return page's reading of a session, and what
the billing page shows. Called by web/billing/; no HTTP here (Stripe is the Payments port).

- `customer_for`: the account's Stripe customer, made on first need and kept in
  `billing_accounts.customer`. No transaction is held while Stripe answers; two first needs
  at once ask Stripe under one idempotency key (`customer_key`), so Stripe makes one
  customer and answers it to both; whatever else happens, only the first stored is kept
  (insert-if-absent, then read back): both callers get that one (another is logged).
- `start_pack`: `credits` (1,000 to 10,000,000; "10,000" and "10 000" read as 10000)
  priced by domain/billing's `pack_price` at MAILVET_CREDIT_UNIT_PRICE_CENTS in
  MAILVET_CREDIT_CURRENCY; the Checkout URL (client_reference_id = the account,
  metadata.credits = the credits, from the Payments port). `CheckoutRefused` before any
  Stripe call when the input is wrong.
- `start_subscription`: only an active tier of `billing_tiers`; an account whose
  subscription is live (active, trialing, past due, unpaid) is sent to the portal instead
  (its URL is returned): a second subscription would charge twice.
- `portal`: a Billing Portal session's URL, returning to /app/billing.
- `checkout_outcome`: the session the success page names, read from Stripe, only when it is
  the account's own (`SessionNotFound` otherwise, as for a session Stripe does not know),
  and whether its credits are in the ledger yet (the webhook adds them, key
  domain.billing.pack_key).
- `overview`: the page's numbers: balance and reserved, tier, status, renewal or
  cancellation date, shortfall, invoices (None when Stripe cannot be reached: the page
  still renders; kept a minute in the caller's services/invoice_cache.InvoiceCache), a
  page of the ledger.
- The tiers are services/billing_sync.py's `tiers` (what `mailvet billing sync` stored).

Credits are never added here: the webhook (web/billing/webhook.py) does that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.billing_models import BillingAccountRow
from mailvet.adapters.db.database import Database
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.clock import Clock, utc_now
from mailvet.domain.billing import (
    FREE,
    LIVE,
    MAX_PACK,
    MIN_PACK,
    PackError,
    Tier,
    pack_key,
    pack_price,
)
from mailvet.domain.credits import Balance, Entry
from mailvet.domain.payments import CheckoutSession, Invoice, NotFound, Payments, PaymentsError
from mailvet.logs import logger
from mailvet.services import billing_accounts, billing_sync, credits
from mailvet.services.accounts import get_account
from mailvet.services.invoice_cache import InvoiceCache
from mailvet.services.paging import Page
from mailvet.settings import Settings

BILLING_PATH = "/app/billing"
SUCCESS_PATH = "/app/billing/success"
CANCELLED_PATH = "/app/billing/cancelled"
CREDITS_TEXT = 20  # characters of a credits field read
SESSION_ID = re.compile(r"cs_[A-Za-z0-9_]{1,250}")
_DIGITS = re.compile(r"[0-9]{1,3}(?:[, _][0-9]{3})*|[0-9]+")


class CheckoutRefused(ValueError):
    """The form's input is wrong (the message says why, for the form); nothing was asked of
    Stripe. `field`: the form field it is about ("credits" or "tier")."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class SessionNotFound(LookupError):
    """No such Checkout Session for this account (unknown to Stripe, or another's)."""


class AccountGone(LookupError):
    """The account was deleted meanwhile."""


# --- reading the tables --------------------------------------------------------------------


async def _tier_named(session: AsyncSession, name: str) -> Tier | None:
    """The stored tier `name`, active or not (services/billing_sync.py reads the table)."""
    stored = await billing_sync.tiers(session, active_only=False)
    return next((tier for tier in stored if tier.name == name), None)


# --- the customer -----------------------------------------------------------------------------


def customer_key(account_id: str) -> str:
    """The idempotency key of the account's customer creation: two first needs at once (or a
    retry after an answer lost) get the one customer Stripe made, no orphan."""
    return f"mailvet-customer-{account_id}"


async def customer_for(
    database: Database, payments: Payments, account_id: str, *, clock: Clock = utc_now
) -> str:
    """The account's Stripe customer, made on first need (see the module's docstring).
    PaymentsError when Stripe fails; AccountGone when the account is no more."""
    async with database.unit_of_work() as session:
        row = await session.get(BillingAccountRow, account_id)
        if row is not None and row.customer:
            return row.customer
        account = await get_account(session, account_id)
    if account is None:
        raise AccountGone(account_id)
    made = await payments.create_customer(
        account_id=account_id, email=account.email, idempotency_key=customer_key(account_id)
    )
    async with database.unit_of_work(write=True) as session:
        table = BillingAccountRow
        await billing_accounts.set_fields(  # a row made without one (the webhook's) gets it
            session, account_id, clock(), only_if=table.customer.is_(None), customer=made
        )
        kept = (
            await session.execute(select(table.customer).where(table.account_id == account_id))
        ).scalar_one()
    if kept != made:
        logger(__name__).info(
            "stripe_customer_unused", account_id=account_id, customer=made, kept=kept
        )
    return str(kept)


# --- checkout and the portal ---------------------------------------------------------------


def read_credits(text: str) -> int:
    """The credits a form asks for ("25000", "25,000", "25 000"), within the pack's bounds;
    CheckoutRefused otherwise."""
    cleaned = text.strip()
    if not _DIGITS.fullmatch(cleaned):
        raise CheckoutRefused(
            f"Enter a whole number of credits, {MIN_PACK:,} to {MAX_PACK:,}.", field="credits"
        )
    count = int(re.sub(r"[, _]", "", cleaned))
    if not MIN_PACK <= count <= MAX_PACK:
        raise CheckoutRefused(
            f"A pack is {MIN_PACK:,} to {MAX_PACK:,} credits; {count:,} is not.", field="credits"
        )
    return count


def _urls(settings: Settings) -> tuple[str, str]:
    base = settings.web.base_url
    return f"{base}{SUCCESS_PATH}?session_id={{CHECKOUT_SESSION_ID}}", f"{base}{CANCELLED_PATH}"


def _url_of(session: CheckoutSession) -> str:
    if not session.url:
        raise PaymentsError("Stripe answered a Checkout Session without its URL")
    return session.url


async def start_pack(
    database: Database,
    payments: Payments,
    settings: Settings,
    account_id: str,
    credits_text: str,
    *,
    clock: Clock = utc_now,
) -> str:
    """The Checkout URL of a pack of `credits_text` credits (CheckoutRefused for a wrong
    count, before any Stripe call; PaymentsError when Stripe fails)."""
    count = read_credits(credits_text)
    billing = settings.billing
    try:
        amount = pack_price(count, billing.credit_unit_price_cents)
    except PackError as problem:  # read_credits checked the bounds already
        raise CheckoutRefused(str(problem), field="credits") from problem
    customer = await customer_for(database, payments, account_id, clock=clock)
    success_url, cancel_url = _urls(settings)
    session = await payments.pack_checkout(
        customer=customer,
        account_id=account_id,
        credits=count,
        amount=amount,
        currency=billing.credit_currency,
        success_url=success_url,
        cancel_url=cancel_url,
    )
    logger(__name__).info(
        "billing_pack_checkout", account_id=account_id, session=session.id, credits=count
    )
    return _url_of(session)


async def start_subscription(
    database: Database,
    payments: Payments,
    settings: Settings,
    account_id: str,
    tier_name: str,
    *,
    clock: Clock = utc_now,
) -> str:
    """The Checkout URL of a subscription to the active tier `tier_name`; the portal's URL
    when the account's subscription is live already. CheckoutRefused for a tier that does
    not exist or is not active (before any Stripe call)."""
    async with database.unit_of_work() as db:
        tier = await _tier_named(db, tier_name.strip())
        row = await db.get(BillingAccountRow, account_id)
    if tier is None or not tier.active or tier.price is None:
        raise CheckoutRefused("There is no such plan to subscribe to.", field="tier")
    if row is not None and row.subscription_id and row.status in LIVE:
        return await portal(database, payments, settings, account_id, clock=clock)
    customer = await customer_for(database, payments, account_id, clock=clock)
    success_url, cancel_url = _urls(settings)
    session = await payments.subscription_checkout(
        customer=customer,
        account_id=account_id,
        price=tier.price,
        success_url=success_url,
        cancel_url=cancel_url,
    )
    logger(__name__).info(
        "billing_subscription_checkout", account_id=account_id, session=session.id, tier=tier.name
    )
    return _url_of(session)


async def portal(
    database: Database,
    payments: Payments,
    settings: Settings,
    account_id: str,
    *,
    clock: Clock = utc_now,
) -> str:
    """A Billing Portal session's URL for the account (its customer made on first need)."""
    customer = await customer_for(database, payments, account_id, clock=clock)
    made = await payments.portal_session(
        customer=customer, return_url=settings.web.base_url + BILLING_PATH
    )
    return made.url


# --- the return page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckoutOutcome:
    """What the success page says: a pack (`credits`; `added`: the webhook has put them in
    the ledger) or a subscription; `paid`: Stripe says it is paid (its payment_status,
    never its status alone: a session of a delayed method is complete and still unpaid)."""

    session_id: str
    mode: str
    paid: bool
    credits: int = 0
    added: bool = False


async def checkout_outcome(
    database: Database, payments: Payments, account_id: str, session_id: str
) -> CheckoutOutcome:
    """The account's own Checkout Session `session_id`, from Stripe (SessionNotFound when it
    is not one, unknown, or another account's; PaymentsError when Stripe fails)."""
    if not SESSION_ID.fullmatch(session_id):
        raise SessionNotFound(session_id[:40])
    try:
        session = await payments.checkout_session(session_id)
    except NotFound as missing:
        raise SessionNotFound(session_id) from missing
    if session.client_reference_id != account_id:
        raise SessionNotFound(session_id)
    # complete is not paid: a delayed method (ACH, SEPA) completes the session unpaid, and
    # Stripe confirms the payment days later (a trial's subscription needs none)
    paid = session.payment_status == "paid" or (
        session.mode == "subscription" and session.payment_status == "no_payment_required"
    )
    if session.mode == "subscription":
        return CheckoutOutcome(session_id=session.id, mode="subscription", paid=paid)
    count = session.metadata.get("credits", "")
    async with database.unit_of_work() as db:
        found = await db.execute(
            select(LedgerEntryRow.id).where(
                LedgerEntryRow.key == pack_key(session.id),
                LedgerEntryRow.account_id == account_id,
            )
        )
        added = found.first() is not None
    return CheckoutOutcome(
        session_id=session.id,
        mode="payment",
        paid=paid,
        credits=int(count) if count.isdigit() else 0,
        added=added,
    )


# --- the billing page --------------------------------------------------------------------------


@dataclass(frozen=True)
class Overview:
    """What /app/billing shows. `invoices` None: Stripe could not be reached (the page says
    so); `renews_at` / `cancels_at`: the subscription's renewal, or when its cancellation
    takes effect; `subscribed`: a live subscription (manage it, do not subscribe again)."""

    balance: Balance
    tier: Tier
    status: str
    renews_at: datetime | None
    cancels_at: datetime | None
    shortfall: int
    subscribed: bool
    has_customer: bool
    invoices: list[Invoice] | None
    history: Page[Entry]
    tiers: list[Tier]


def _when(unix: int | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC)


async def overview(
    database: Database,
    payments: Payments | None,
    account_id: str,
    *,
    limit: int = 25,
    offset: int = 0,
    cache: InvoiceCache | None = None,
) -> Overview:
    """The page's numbers (see Overview); `limit`/`offset`: the page of the ledger. With
    billing off (`payments` None) no Stripe call and no invoices. `cache`: the invoices
    read less than a minute ago are shown without asking Stripe again."""
    async with database.unit_of_work() as session:
        balance = await credits.balance(session, account_id)
        history = await credits.history(session, account_id, limit=limit, offset=offset)
        row = await session.get(BillingAccountRow, account_id)
        offered = await billing_sync.tiers(session)
        tier = FREE
        if row is not None and row.tier != FREE.name:
            tier = await _tier_named(session, row.tier) or Tier(
                name=row.tier, label=row.tier, monthly_credits=0, amount=0, currency=""
            )
    status = row.status if row is not None else ""
    subscribed = row is not None and bool(row.subscription_id) and status in LIVE
    cancel_at = row.cancel_at if row is not None and subscribed else None
    period_end = row.current_period_end if row is not None and subscribed else None
    customer = row.customer if row is not None else None
    invoices: list[Invoice] | None = []
    if payments is not None and customer:
        try:
            invoices = cache.get(account_id, customer) if cache is not None else None
            if invoices is None:
                invoices = await payments.invoices(customer)
                if cache is not None:
                    cache.put(account_id, customer, invoices)
        except PaymentsError as error:
            logger(__name__).warning(
                "billing_invoices_unavailable", account_id=account_id, error=type(error).__name__
            )
            invoices = None
    return Overview(
        balance=balance,
        tier=tier,
        status=status,
        renews_at=None if cancel_at is not None else _when(period_end),
        cancels_at=_when(cancel_at),
        shortfall=row.shortfall if row is not None else 0,
        subscribed=subscribed,
        has_customer=bool(customer),
        invoices=invoices,
        history=history,
        tiers=offered,
    )
