"""Billing, the rules (issue 10): tiers, the price of a credit pack, and what each Stripe event
means for an account's credits, subscription and mail.

- Tiers: the free tier (`FREE`) and the monthly tiers mirrored from Stripe's prices
  (`tier_from_price`: a monthly price whose `metadata.credits` says the credits it grants
  each period, `metadata.tier` its name, `metadata.label` or its nickname its label).
- Packs (`pack_price`): 1,000 to 10,000,000 credits, priced per 1,000 credits
  (MAILVET_CREDIT_UNIT_PRICE_CENTS, default 1000: $10), rounded up to a whole cent.
- Events (`EventKind`): `decide(state, event, tiers, now=)` says what an event does to the account
  whose stored state is `state`, as effects for the caller to carry out in one transaction
  with the event's own record; `apply(state, effects)` is the state after them.
  - checkout.session.completed: a paid pack adds its credits once (ledger key
    `stripe-pack:<session>`); either mode links the customer to the account. A pack paid
    by a delayed method completes unpaid: checkout.session.async_payment_succeeded then
    adds it, the same way under the same key; async_payment_failed adds nothing (ignored).
  - invoice.paid (or invoice.payment_succeeded, its twin): a subscription's invoice grants
    its tier's monthly credits once per billing period
    (`stripe-period:<subscription>:<period start>`), whatever invoice pays it; an invoice of
    proration lines alone (a plan changed mid-period, invoiced at once) grants nothing: the
    new tier's credits come with its next period.
  - invoice.payment_failed: an active subscription becomes past_due; the mail, once per
    invoice. A failure older than the stored subscription, which is active, is stale (a
    later payment went through): no change, no mail.
  - customer.subscription.created|updated|deleted: tier, status, the date a cancellation
    takes effect; the mails confirmed, cancelled (with that date), ended, each once (a key
    per subscription and tier or date); ended only after confirmed (an incomplete_expired
    subscription never started).
  - charge.refunded: a pack's refunded share (cumulative, so partial refunds add up) comes
    off the balance, never below 0: what jobs already used of it is the shortfall, recorded.
    When the balance cannot cover it while running jobs hold credits, the refund waits
    (deferred) for their settlement, which gives back what they did not use.
    A subscription's charge refunded takes nothing back: a charge of no pack known is
    deferred while the event is recent (`PACK_WAIT`: its pack's checkout may come later),
    then ignored (Stripe's charges no longer name their invoice; one that does is ignored at
    once).
- Exactly once: a replayed event finds its keys in the state and decides nothing. Out of
  order: a subscription event older than the stored one (or as old, saying something else)
  asks for Stripe's current subscription (`Decision.refetch`) and is decided again on it
  (so does an older other subscription when the stored one has ended: a replacement told
  late); another subscription's end leaves a stored one that goes on as it is; an
  event about something not known yet (a refund of a pack whose checkout is not processed,
  a price not synced into the tiers) is deferred: the webhook answers 5xx and Stripe retries.

Pure: no I/O. The records are domain/payments.py's.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import msgspec

from mailvet.domain.payments import Charge, CheckoutSession, Invoice, Price, Subscription

MIN_PACK = 1_000
MAX_PACK = 10_000_000
PACK_UNIT = 1_000  # MAILVET_CREDIT_UNIT_PRICE_CENTS is the price of this many credits
ACTIVE = frozenset({"active", "trialing"})
ENDED = frozenset({"canceled", "incomplete_expired"})
LIVE = ACTIVE | {"past_due", "unpaid"}  # a subscription that still bills
LOW_CREDITS_SHARE = 10  # services/low_credits: under 1/10 of the last grant or purchase
# seconds a refund of a charge no pack is known by waits for the pack's checkout (deferred)
# before it is taken for another charge's (Stripe's charges no longer name their invoice)
PACK_WAIT = 3_600


# --- tiers and packs ---------------------------------------------------------------------


class Tier(msgspec.Struct, frozen=True, kw_only=True):
    """A plan: `monthly_credits` granted each paid period, for `amount` (cents) a month."""

    name: str
    label: str
    monthly_credits: int
    amount: int
    currency: str
    price: str | None = None  # the Stripe price subscribed to; None for the free tier
    active: bool = True


FREE = Tier(name="free", label="Free", monthly_credits=0, amount=0, currency="usd")


def tier_from_price(price: Price) -> Tier | None:
    """The tier a Stripe price stands for, or None when it is none (not monthly, or no
    whole `metadata.credits` >= 0)."""
    credits = _count(price.metadata.get("credits"))
    if price.interval != "month" or credits is None:
        return None
    name = price.metadata.get("tier") or price.id
    return Tier(
        name=name,
        label=price.metadata.get("label") or price.nickname or name,
        monthly_credits=credits,
        amount=price.unit_amount,
        currency=price.currency,
        price=price.id,
        active=price.active,
    )


def tier_of_price(tiers: Iterable[Tier], price: str | None) -> Tier | None:
    return next((t for t in tiers if price is not None and t.price == price), None)


class PackError(ValueError):
    """A pack outside the bounds (the message says them, for the form)."""


def pack_price(credits: int, unit_price_cents: int) -> int:
    """What `credits` cost, in cents: `unit_price_cents` per 1,000, rounded up."""
    if not MIN_PACK <= credits <= MAX_PACK:
        raise PackError(f"a pack is {MIN_PACK:,} to {MAX_PACK:,} credits")
    if unit_price_cents < 1:
        raise ValueError("a price is at least a cent")
    return -(-credits * unit_price_cents // PACK_UNIT)


def pack_credits(metadata: Mapping[str, str]) -> int | None:
    """The credits a pack's checkout says it sold (`metadata.credits`), None if none valid."""
    credits = _count(metadata.get("credits"))
    return credits if credits is not None and MIN_PACK <= credits <= MAX_PACK else None


def renews(status: str, cancel_at: int | None) -> bool:
    """Will this subscription bill again? (live, and no cancellation on its way)"""
    return status in LIVE and cancel_at is None


def _count(text: str | None) -> int | None:
    if text is None or not text.isascii() or not text.isdigit():
        return None
    return int(text)


# --- events --------------------------------------------------------------------------------


class EventKind(enum.StrEnum):
    CHECKOUT_COMPLETED = "checkout.session.completed"
    # a pack paid by a delayed method (a bank debit): completed said "unpaid", this says paid
    CHECKOUT_ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
    CHECKOUT_ASYNC_FAILED = "checkout.session.async_payment_failed"
    INVOICE_PAID = "invoice.paid"
    # sent with invoice.paid for a payment (not for one marked paid out of band): either
    # grants the period, once; an endpoint may be subscribed to one or both
    INVOICE_PAYMENT_SUCCEEDED = "invoice.payment_succeeded"
    INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
    SUBSCRIPTION_CREATED = "customer.subscription.created"
    SUBSCRIPTION_UPDATED = "customer.subscription.updated"
    SUBSCRIPTION_DELETED = "customer.subscription.deleted"
    CHARGE_REFUNDED = "charge.refunded"


HANDLED = frozenset(k.value for k in EventKind)
EventObject = CheckoutSession | Invoice | Subscription | Charge
OBJECT_OF: Mapping[EventKind, type[EventObject]] = {
    EventKind.CHECKOUT_COMPLETED: CheckoutSession,
    EventKind.CHECKOUT_ASYNC_SUCCEEDED: CheckoutSession,
    EventKind.CHECKOUT_ASYNC_FAILED: CheckoutSession,
    EventKind.INVOICE_PAID: Invoice,
    EventKind.INVOICE_PAYMENT_SUCCEEDED: Invoice,
    EventKind.INVOICE_PAYMENT_FAILED: Invoice,
    EventKind.SUBSCRIPTION_CREATED: Subscription,
    EventKind.SUBSCRIPTION_UPDATED: Subscription,
    EventKind.SUBSCRIPTION_DELETED: Subscription,
    EventKind.CHARGE_REFUNDED: Charge,
}


class BillingEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A Stripe event we handle: its id (`evt_...`), kind, time (`created`) and object."""

    id: str
    kind: EventKind
    created: int
    object: EventObject

    def __post_init__(self) -> None:
        if not isinstance(self.object, OBJECT_OF[self.kind]):
            raise ValueError(f"{self.kind} carries a {OBJECT_OF[self.kind].__name__}")


class AccountRef(msgspec.Struct, frozen=True):
    """Whose event it is: the account id when the event names it (a checkout's
    client_reference_id), else the Stripe customer to look the account up by."""

    account_id: str | None
    customer: str | None


def account_of(event: BillingEvent) -> AccountRef:
    obj = event.object
    if isinstance(obj, CheckoutSession):
        return AccountRef(obj.client_reference_id, obj.customer)
    return AccountRef(None, obj.customer)


# --- the stored state, as the decisions need it -------------------------------------------


class Pack(msgspec.Struct, frozen=True, kw_only=True):
    """A pack bought: `removed` of its credits were taken back by refunds so far (the
    shortfall included)."""

    session: str
    payment_intent: str | None
    credits: int
    amount: int
    removed: int = 0


class SubscriptionState(msgspec.Struct, frozen=True, kw_only=True):
    """The account's subscription as last applied; `version` is the `created` time of the
    event it came from (a fetched one keeps the event's)."""

    id: str
    tier: str
    status: str
    cancel_at: int | None = None  # when a cancellation takes effect
    current_period_end: int | None = None
    version: int = 0


class BillingState(msgspec.Struct, frozen=True, kw_only=True):
    """One account's billing as stored: the customer, the spendable balance and what running
    jobs hold, the subscription, the packs, the ledger keys and mail keys used, the shortfall
    recorded."""

    account_id: str
    customer: str | None = None
    balance: int = 0
    reserved: int = 0  # held by running jobs (out of `balance`): given back as they settle
    subscription: SubscriptionState | None = None
    packs: tuple[Pack, ...] = ()
    keys: frozenset[str] = frozenset()
    mails: frozenset[str] = frozenset()
    shortfall: int = 0

    def pack_paid_by(self, payment_intent: str | None) -> Pack | None:
        return next(
            (p for p in self.packs if payment_intent and p.payment_intent == payment_intent),
            None,
        )


# --- effects and the decision ---------------------------------------------------------------


class MailKind(enum.StrEnum):
    SUBSCRIPTION_CONFIRMED = "subscription_confirmed"
    SUBSCRIPTION_CANCELLED = "subscription_cancelled"
    SUBSCRIPTION_ENDED = "subscription_ended"
    PAYMENT_FAILED = "payment_failed"
    LOW_CREDITS = "low_credits"


class AddCredits(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Grant `amount` under the ledger key `key` (a pack's purchase or a period's grant)."""

    amount: int
    key: str
    source: Literal["pack", "period"]
    reason: str


class RemoveCredits(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A refund: take `amount` off the balance (may be 0) and record `shortfall`, the part
    jobs already used, under the ledger key `key`."""

    amount: int
    shortfall: int
    key: str
    charge: str


class LinkCustomer(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    customer: str


class RecordPack(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    pack: Pack


class RecordRefund(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The pack bought in checkout `session` now has `removed` of its credits taken back."""

    session: str
    removed: int


class SetSubscription(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    subscription: SubscriptionState


class SendMail(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A mail to the account, once per `key` (the outbox's idempotency key too)."""

    kind: MailKind
    key: str
    data: dict[str, str] = msgspec.field(default_factory=dict)


Effect = (
    AddCredits
    | RemoveCredits
    | LinkCustomer
    | RecordPack
    | RecordRefund
    | SetSubscription
    | SendMail
)


class Refetch(msgspec.Struct, frozen=True):
    """Fetch Stripe's current subscription and decide again with it (`fresh=`)."""

    subscription: str


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """Effects to carry out; or `refetch`; or `defer` (not yet: fail, Stripe retries); or
    `ignored` (nothing to do: why, for the log). Nothing at all: a replay."""

    effects: tuple[Effect, ...] = ()
    refetch: Refetch | None = None
    defer: str = ""
    ignored: str = ""


def pack_key(session: str) -> str:
    return f"stripe-pack:{session}"


def period_key(subscription: str, period_start: int) -> str:
    return f"stripe-period:{subscription}:{period_start}"


def refund_key(charge: str, amount_refunded: int) -> str:
    """One key per cumulative refunded amount of a charge: each new refund of it is new."""
    return f"stripe-refund:{charge}:{amount_refunded}"


def decide(
    state: BillingState,
    event: BillingEvent,
    tiers: Sequence[Tier],
    *,
    now: int,
    fresh: Subscription | None = None,
) -> Decision:
    """What `event` does to the account whose stored state is `state` (see the module's
    docstring), at `now` (Unix time); `fresh`: Stripe's current subscription, when a Decision
    asked for it."""
    obj = event.object
    if isinstance(obj, CheckoutSession):
        if event.kind is EventKind.CHECKOUT_ASYNC_FAILED:
            return Decision(ignored="a delayed payment failed: no credits")
        return _checkout(state, obj)
    if isinstance(obj, Charge):
        return _refund(state, obj, recent=now - event.created < PACK_WAIT)
    if isinstance(obj, Invoice):
        if event.kind in (EventKind.INVOICE_PAID, EventKind.INVOICE_PAYMENT_SUCCEEDED):
            return _invoice_paid(state, obj, tiers)
        return _payment_failed(state, obj, event.created)
    return _subscription(state, obj, event.created, tiers, fresh)


def _checkout(state: BillingState, session: CheckoutSession) -> Decision:
    effects: list[Effect] = []
    if session.customer and session.customer != state.customer:
        effects.append(LinkCustomer(customer=session.customer))
    if session.mode == "subscription":
        return Decision(effects=tuple(effects))  # the subscription's events say the rest
    if session.payment_status != "paid":
        return Decision(effects=tuple(effects), ignored="checkout not paid (yet)")
    credits = pack_credits(session.metadata)
    if credits is None:
        return Decision(effects=tuple(effects), ignored="a payment without metadata.credits")
    key = pack_key(session.id)
    if key not in state.keys:
        pack = Pack(
            session=session.id,
            payment_intent=session.payment_intent,
            credits=credits,
            amount=session.amount_total or 0,
        )
        reason = f"{credits:,} credits bought"
        effects.append(AddCredits(amount=credits, key=key, source="pack", reason=reason))
        effects.append(RecordPack(pack=pack))
    return Decision(effects=tuple(effects))


def _refund(state: BillingState, charge: Charge, *, recent: bool) -> Decision:
    pack = state.pack_paid_by(charge.payment_intent)
    if pack is None:
        if charge.invoice is not None:  # older API versions name it: a subscription's
            return Decision(ignored="a subscription's charge: its period's credits stay")
        if recent:  # maybe a pack whose checkout is not processed yet
            return Decision(defer=f"no pack recorded for {charge.payment_intent} yet")
        return Decision(ignored="not a pack's charge: a subscription's credits stay")
    if charge.refunded or charge.amount <= 0:
        taken_back = pack.credits
    else:
        taken_back = min(pack.credits, pack.credits * charge.amount_refunded // charge.amount)
    due = taken_back - pack.removed
    if due <= 0:  # a replay, or an older event than one applied
        return Decision()
    if due > state.balance and state.reserved > 0:
        # what is short may be held by a job that has not settled: its settlement gives the
        # unused part back, so a shortfall now would count credits that were not used
        return Decision(defer="jobs are running: the refund waits for their settlement")
    removable = min(due, max(state.balance, 0))
    remove = RemoveCredits(
        amount=removable,
        shortfall=due - removable,
        key=refund_key(charge.id, charge.amount_refunded),
        charge=charge.id,
    )
    return Decision(effects=(remove, RecordRefund(session=pack.session, removed=taken_back)))


def _invoice_paid(state: BillingState, invoice: Invoice, tiers: Sequence[Tier]) -> Decision:
    if invoice.subscription is None:
        return Decision(ignored="not a subscription's invoice")
    if invoice.proration:
        return Decision(ignored="a plan change's proration: the new tier grants from its period")
    tier = tier_of_price(tiers, invoice.price)
    if tier is None:
        return Decision(defer=f"price {invoice.price} is no tier: run `mailvet billing sync`")
    key = period_key(invoice.subscription, invoice.period_start or invoice.created)
    if key in state.keys or tier.monthly_credits <= 0:
        return Decision()
    reason = f"{tier.label}: {tier.monthly_credits:,} credits for the period"
    return Decision(
        effects=(AddCredits(amount=tier.monthly_credits, key=key, source="period", reason=reason),)
    )


def _payment_failed(state: BillingState, invoice: Invoice, created: int) -> Decision:
    if invoice.subscription is None:
        return Decision(ignored="not a subscription's invoice")
    effects: list[Effect] = []
    current = state.subscription
    if current is not None and current.id == invoice.subscription and current.status in ACTIVE:
        if created < current.version:  # active since: a later payment went through
            return Decision(ignored="a stale failure: the subscription is active since")
        changed = msgspec.structs.replace(current, status="past_due", version=created)
        effects.append(SetSubscription(subscription=changed))
    key = f"payment-failed:{invoice.id}"
    if key not in state.mails:
        data = {
            "invoice": invoice.id,
            "amount": str(invoice.amount_due),
            "currency": invoice.currency,
        }
        effects.append(SendMail(kind=MailKind.PAYMENT_FAILED, key=key, data=data))
    return Decision(effects=tuple(effects))


def _subscription(
    state: BillingState,
    sub: Subscription,
    created: int,
    tiers: Sequence[Tier],
    fresh: Subscription | None,
) -> Decision:
    current = state.subscription
    seen = current is not None and current.id == sub.id
    if fresh is None and current is not None and seen:
        stale = created < current.version or (
            created == current.version and _state_of(sub, current.tier, created) != current
        )
        if stale:
            return Decision(refetch=Refetch(sub.id))
    if current is not None and not seen:
        other = _other_subscription(current, sub, created, fresh)
        if other is not None:
            return other
    target = fresh if fresh is not None else sub
    if target.status in ENDED:
        tier = FREE
    else:
        found = tier_of_price(tiers, target.price)
        if found is None:
            return Decision(defer=f"price {target.price} is no tier: run `mailvet billing sync`")
        tier = found
    newest = seen or fresh is not None  # Stripe's current state: as new as the one stored
    version = max(created, current.version) if current is not None and newest else created
    new = _state_of(target, tier.name, version)
    effects: list[Effect] = []
    if new != current:
        effects.append(SetSubscription(subscription=new))
    effects.extend(_subscription_mails(state, new, tier))
    return Decision(effects=tuple(effects))


def _other_subscription(
    current: SubscriptionState, sub: Subscription, created: int, fresh: Subscription | None
) -> Decision | None:
    """An event of a subscription other than the one stored: what to do instead of applying
    it (None: apply it). One that ended while the stored one goes on changes nothing (a plan
    replaced by a new subscription, then the old one cancelled); an older one is ignored,
    unless the stored one has ended: then Stripe's current state of this one decides (a
    replacement told after the end of the one it replaced), applied if it is not ended."""
    told = fresh if fresh is not None else sub
    if told.status in ENDED and current.status not in ENDED:
        return Decision(ignored="another subscription ended: the one stored goes on")
    if created >= current.version:
        return None
    if current.status not in ENDED:
        return Decision(ignored="an older subscription than the one stored")
    if fresh is None:
        return Decision(refetch=Refetch(sub.id))
    if fresh.status in ENDED:
        return Decision(ignored="an older subscription, ended as the one stored")
    return None


def _state_of(sub: Subscription, tier: str, version: int) -> SubscriptionState:
    ends = sub.cancel_at
    if ends is None and sub.cancel_at_period_end:
        ends = sub.current_period_end
    return SubscriptionState(
        id=sub.id,
        tier=tier,
        status=sub.status,
        cancel_at=ends if sub.status not in ENDED else None,
        current_period_end=sub.current_period_end,
        version=version,
    )


def _subscription_mails(
    state: BillingState, new: SubscriptionState, tier: Tier
) -> Iterable[SendMail]:
    wanted: list[tuple[MailKind, str, dict[str, str]]] = []
    if new.status in ENDED:
        # only one that started (its confirmation mailed): an incomplete subscription whose
        # first payment never went through expires without having begun
        confirmed = f"subscription-confirmed:{new.id}:"
        if any(key.startswith(confirmed) for key in state.mails):
            wanted.append((MailKind.SUBSCRIPTION_ENDED, f"subscription-ended:{new.id}", {}))
    elif new.status in ACTIVE:
        key = f"subscription-confirmed:{new.id}:{tier.name}"
        wanted.append((MailKind.SUBSCRIPTION_CONFIRMED, key, {"tier": tier.label}))
        if new.cancel_at is not None:
            key = f"subscription-cancelled:{new.id}:{new.cancel_at}"
            data = {"tier": tier.label, "ends_at": str(new.cancel_at)}
            wanted.append((MailKind.SUBSCRIPTION_CANCELLED, key, data))
    for kind, key, data in wanted:
        if key not in state.mails:
            yield SendMail(kind=kind, key=key, data=data)


# --- the state after the effects ----------------------------------------------------------------


def apply(state: BillingState, effects: Iterable[Effect]) -> BillingState:
    """The state after `effects` (what the caller's transaction stores, in memory)."""
    for effect in effects:
        state = _apply_one(state, effect)
    return state


def _apply_one(state: BillingState, effect: Effect) -> BillingState:
    replace = msgspec.structs.replace
    if isinstance(effect, AddCredits):
        return replace(state, balance=state.balance + effect.amount, keys=state.keys | {effect.key})
    if isinstance(effect, RemoveCredits):
        return replace(
            state,
            balance=state.balance - effect.amount,
            shortfall=state.shortfall + effect.shortfall,
            keys=state.keys | {effect.key},
        )
    if isinstance(effect, LinkCustomer):
        return replace(state, customer=effect.customer)
    if isinstance(effect, RecordPack):
        return replace(state, packs=(*state.packs, effect.pack))
    if isinstance(effect, RecordRefund):
        packs = tuple(
            replace(p, removed=effect.removed) if p.session == effect.session else p
            for p in state.packs
        )
        return replace(state, packs=packs)
    if isinstance(effect, SetSubscription):
        return replace(state, subscription=effect.subscription)
    return replace(state, mails=state.mails | {effect.key})
