"""Stripe's webhook events, processed exactly once (issue 10 §2): `process_event`.

The endpoint (web/billing/webhook.py) verifies the signature and reads the event
(adapters/payments/stripe_gateway.verify_event); this carries it out:

1. One write transaction. The event's row goes into `stripe_events` first (INSERT ... ON
   CONFLICT DO NOTHING on its id): nothing inserted means it was processed before (or is being
   processed by another replica right now, whose transaction this one waits for): a replay,
   nothing changes.
2. The account: the checkout's `client_reference_id`, else the account whose Stripe customer
   the event names. None (a customer made outside mailvet, a deleted account): recorded as
   ignored.
3. The account's balance row is locked (services/credits.lock_balance, as every spend does),
   so two events of one account, or an event and a job's reservation, run one after the other;
   then its billing state is read (domain.billing.BillingState: the billing_accounts row, the
   balance, the packs, the ledger keys the event could use, the billing mail keys) and
   `domain.billing.decide` says what the event does.
4. The effects are carried out in the same transaction: ledger entries under their keys
   (services/credits: grant, take_back), the customer, pack and subscription rows, the mails
   (services/billing_mail, once per key); the event's row says what was done. Commit.

A decision that asks for Stripe's current subscription (an event older than the stored one)
rolls back, fetches it (`Payments.subscription`) and decides again on it, in a new
transaction; if the stored subscription changed meanwhile (another replica committed a newer
event between the fetch and this round), what was fetched may be older than it: Stripe is
asked again (`MAX_FETCHES` times at most, then Deferred). A deferred decision
(an event about something not known yet: a price not synced, a refund before its checkout,
or one that waits for running jobs to settle)
or any failure rolls back everything, the event's row included, and raises: the endpoint
answers 5xx and Stripe sends the event again later.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.billing_models import (
    BillingAccountRow,
    BillingMailKeyRow,
    BillingPackRow,
    StripeEventRow,
)
from mailvet.adapters.db.database import Database, dialect_insert
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.domain import billing as rules
from mailvet.domain.billing import (
    AddCredits,
    BillingEvent,
    BillingState,
    Decision,
    Effect,
    LinkCustomer,
    Pack,
    RecordPack,
    RecordRefund,
    RemoveCredits,
    SendMail,
    SetSubscription,
    SubscriptionState,
)
from mailvet.domain.credits import EntryKind
from mailvet.domain.payments import Charge, CheckoutSession, Invoice, Payments, Subscription
from mailvet.logs import logger
from mailvet.services import billing_accounts, billing_sync, credits
from mailvet.services.billing_mail import queue_billing_mail

DETAIL_MAX = 1000


class Outcome(enum.StrEnum):
    APPLIED = "applied"  # its effects are stored (maybe none: nothing left to do)
    IGNORED = "ignored"  # nothing for billing to do (recorded, so a replay is one too)
    REPLAY = "replay"  # processed before: nothing changed this time


class Deferred(Exception):
    """Not yet: the event is about something mailvet does not know yet (the message says
    what). Nothing was stored; the webhook answers 503 and Stripe retries."""


class Processed(msgspec.Struct, frozen=True):
    outcome: Outcome
    account_id: str | None = None
    detail: str = ""


async def process_event(
    database: Database, payments: Payments, event: BillingEvent, *, now: datetime
) -> Processed:
    """Carry out `event` once (see the module's docstring). Raises Deferred, PaymentsError
    (Stripe could not be asked for the current subscription) or the database's error: nothing
    was stored then."""
    fresh: Fetched | None = None
    fetches = 0
    while True:
        try:
            async with database.unit_of_work(write=True) as session:
                done = await _once(session, event, fresh, now=now)
        except _Refetch as wanted:  # rolled back, the event's row too: decided again after
            if fetches == MAX_FETCHES:
                raise Deferred(
                    f"subscription {wanted.subscription} kept changing while Stripe was asked"
                ) from None
            fetches += 1
            current = await payments.subscription(wanted.subscription)
            fresh = Fetched(current, wanted.stored)
            continue
        _log(event, done)
        return done


MAX_FETCHES = 3  # Stripe asked this many times at most for one event, then Deferred


class Fetched(msgspec.Struct, frozen=True):
    """Stripe's current subscription, and the subscription stored when it was asked for (a
    newer one stored by then, by another replica, makes the fetch stale: asked again)."""

    subscription: Subscription
    stored: SubscriptionState | None


class _Refetch(Exception):
    def __init__(self, subscription: str, stored: SubscriptionState | None) -> None:
        self.subscription = subscription
        self.stored = stored


async def _once(
    session: AsyncSession, event: BillingEvent, fresh: Fetched | None, *, now: datetime
) -> Processed:
    """One round in one transaction: what to commit; raises _Refetch (the decision wants
    Stripe's current subscription, or the one fetched is older than what another replica
    stored since) or Deferred, rolling it all back."""
    inserted = await session.execute(
        dialect_insert(session, StripeEventRow)
        .values(
            id=event.id,
            type=event.kind.value,
            created=event.created,
            account_id=None,
            outcome=Outcome.IGNORED.value,
            detail="",
            processed_at=now,
        )
        .on_conflict_do_nothing()
        .returning(StripeEventRow.id)
    )
    if inserted.scalar_one_or_none() is None:
        return Processed(Outcome.REPLAY)
    account_id = await _account_of(session, event)
    if account_id is None:
        return await _record(session, event, Processed(Outcome.IGNORED, None, "not an account's"))
    balance = await credits.lock_balance(session, account_id, now)
    reserved = (await credits.balance(session, account_id)).reserved
    state = await _state(session, account_id, balance, reserved, event)
    if fresh is not None and state.subscription != fresh.stored:
        # another event was stored between the first round and now: what Stripe said may
        # be older than it, so ask again (this round holds the account's lock: no other)
        raise _Refetch(fresh.subscription.id, state.subscription)
    decision = rules.decide(
        state,
        event,
        await billing_sync.tiers(session, active_only=False),  # an archived price's too
        now=int(now.timestamp()),
        fresh=fresh.subscription if fresh is not None else None,
    )
    if decision.refetch is not None:
        if fresh is not None:
            raise RuntimeError("a decision on Stripe's current subscription asked for it again")
        raise _Refetch(decision.refetch.subscription, state.subscription)
    if decision.defer:
        raise Deferred(decision.defer)
    await _carry_out(session, account_id, decision, now=now)
    outcome = Outcome.IGNORED if decision.ignored else Outcome.APPLIED
    detail = decision.ignored or _summary(decision.effects)
    return await _record(session, event, Processed(outcome, account_id, detail))


async def _record(session: AsyncSession, event: BillingEvent, done: Processed) -> Processed:
    await session.execute(
        update(StripeEventRow)
        .where(StripeEventRow.id == event.id)
        .values(
            account_id=done.account_id, outcome=done.outcome.value, detail=done.detail[:DETAIL_MAX]
        )
    )
    return done


# --- whose event, and their state ---------------------------------------------------------


async def _account_of(session: AsyncSession, event: BillingEvent) -> str | None:
    ref = rules.account_of(event)
    if ref.account_id:
        query = select(AccountRow.id).where(AccountRow.id == ref.account_id)
        if (await session.execute(query)).scalar_one_or_none() is not None:
            return ref.account_id
    if ref.customer:
        query = select(BillingAccountRow.account_id).where(
            BillingAccountRow.customer == ref.customer
        )
        return (await session.execute(query)).scalar_one_or_none()
    obj = event.object
    if isinstance(obj, Charge) and obj.payment_intent:  # a refund of a pack, no customer named
        query = select(BillingPackRow.account_id).where(
            BillingPackRow.payment_intent == obj.payment_intent
        )
        return (await session.execute(query)).scalar_one_or_none()
    return None


async def _state(
    session: AsyncSession, account_id: str, balance: int, reserved: int, event: BillingEvent
) -> BillingState:
    row = await session.get(BillingAccountRow, account_id)
    subscription = None
    if row is not None and row.subscription_id:
        subscription = SubscriptionState(
            id=row.subscription_id,
            tier=row.tier,
            status=row.status,
            cancel_at=row.cancel_at,
            current_period_end=row.current_period_end,
            version=row.version,
        )
    packs = (
        await session.execute(select(BillingPackRow).where(BillingPackRow.account_id == account_id))
    ).scalars()
    mails = (
        await session.execute(
            select(BillingMailKeyRow.key).where(BillingMailKeyRow.account_id == account_id)
        )
    ).scalars()
    wanted = _ledger_keys(event)
    keys = (
        (await session.execute(select(LedgerEntryRow.key).where(LedgerEntryRow.key.in_(wanted))))
        .scalars()
        .all()
        if wanted
        else []
    )
    return BillingState(
        account_id=account_id,
        customer=row.customer if row is not None else None,
        balance=balance,
        reserved=reserved,
        subscription=subscription,
        packs=tuple(
            Pack(
                session=p.session,
                payment_intent=p.payment_intent,
                credits=p.credits,
                amount=p.amount,
                removed=p.removed,
            )
            for p in packs
        ),
        keys=frozenset(k for k in keys if k is not None),
        mails=frozenset(mails),
        shortfall=row.shortfall if row is not None else 0,
    )


def _ledger_keys(event: BillingEvent) -> list[str]:
    """The ledger keys `decide` may look for on this event (the account's other keys are
    never read: an account has an entry per address checked)."""
    obj = event.object
    if isinstance(obj, CheckoutSession):
        return [rules.pack_key(obj.id)]
    if isinstance(obj, Invoice) and obj.subscription is not None:
        return [rules.period_key(obj.subscription, obj.period_start or obj.created)]
    return []


# --- the effects ------------------------------------------------------------------------------


async def _carry_out(
    session: AsyncSession, account_id: str, decision: Decision, *, now: datetime
) -> None:
    for effect in decision.effects:
        await _effect(session, account_id, effect, now=now)


async def _effect(session: AsyncSession, account_id: str, effect: Effect, *, now: datetime) -> None:
    if isinstance(effect, AddCredits):
        kind = EntryKind.PURCHASE if effect.source == "pack" else EntryKind.SUBSCRIPTION_GRANT
        await credits.grant(
            session,
            account_id,
            effect.amount,
            kind=kind,
            now=now,
            reason=effect.reason,
            key=effect.key,
        )
    elif isinstance(effect, RemoveCredits):
        reason = f"refund of {effect.charge}"
        if effect.shortfall:
            reason += f": {effect.shortfall:,} of its credits were used already (shortfall)"
        await credits.take_back(
            session, account_id, effect.amount, key=effect.key, reason=reason, now=now
        )
        if effect.shortfall:
            shortfall = BillingAccountRow.shortfall + effect.shortfall
            await billing_accounts.set_fields(session, account_id, now, shortfall=shortfall)
    elif isinstance(effect, LinkCustomer):
        await billing_accounts.set_fields(session, account_id, now, customer=effect.customer)
    elif isinstance(effect, RecordPack):
        pack = effect.pack
        session.add(
            BillingPackRow(
                session=pack.session,
                account_id=account_id,
                payment_intent=pack.payment_intent,
                credits=pack.credits,
                amount=pack.amount,
                removed=pack.removed,
                created_at=now,
            )
        )
        await session.flush()
    elif isinstance(effect, RecordRefund):
        await session.execute(
            update(BillingPackRow)
            .where(BillingPackRow.session == effect.session)
            .values(removed=effect.removed)
        )
    elif isinstance(effect, SetSubscription):
        sub = effect.subscription
        await billing_accounts.set_fields(
            session,
            account_id,
            now,
            subscription_id=sub.id,
            tier=sub.tier,
            status=sub.status,
            cancel_at=sub.cancel_at,
            current_period_end=sub.current_period_end,
            version=sub.version,
        )
    elif isinstance(effect, SendMail):
        await queue_billing_mail(session, account_id, effect.kind, effect.key, effect.data, now=now)


def _summary(effects: Sequence[Effect]) -> str:
    return ", ".join(type(effect).__name__ for effect in effects) or "nothing left to do"


def _log(event: BillingEvent, done: Processed) -> None:
    logger(__name__).info(
        "stripe_event_processed",
        event_id=event.id,
        type=event.kind.value,
        account_id=done.account_id,
        outcome=done.outcome.value,
        detail=done.detail,
    )
