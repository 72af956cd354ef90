"""ORM models of billing (issue 10; services/billing_events.py, billing_checkout.py,
billing_sync.py): the account's Stripe side, the tiers, the packs bought, the Stripe events
processed and the billing mails sent.

Registered on `models.metadata` (imported by adapters/db/schema.py, which the migrations and
`Database.create_all` read).

- `billing_accounts`: one row per account that has been to Stripe: its customer (made on
  first need, unique: an event names the customer, this finds the account), the
  subscription as last applied (domain.billing.SubscriptionState: id, tier, status, the date
  a cancellation takes effect, the period's end, `version` = the `created` time of the event
  it came from) and the credits refunds could not take back (`shortfall`: jobs had used
  them).
- `billing_tiers`: the plans, one row per Stripe price (a tier's name may have several: a
  price changed is a new one, and the old one's subscribers are still granted by it),
  mirrored by `mailvet billing sync` (domain.billing.Tier); the free tier is not stored
  (domain.billing.FREE).
- `billing_packs`: a pack bought (the checkout session that sold it, the payment intent its
  charge and refunds name, the credits and their price) and how many of its credits refunds
  took back so far (`removed`, the shortfall included).
- `stripe_events`: every Stripe event processed, by its id, written in the transaction of its
  effects: an event found here is a replay and changes nothing.
- `billing_mail_keys`: the key of every billing mail queued (subscription confirmed,
  cancelled, ended, payment failed), so that a mail goes once although the outbox purges its
  sent rows.
"""

from __future__ import annotations

import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailvet.adapters.db.models import Base, UtcDateTime

STRIPE_ID = 255  # Stripe ids are under 255 characters


class BillingAccountRow(Base):
    __tablename__ = "billing_accounts"

    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    customer: Mapped[str | None] = mapped_column(String(STRIPE_ID), nullable=True, unique=True)
    subscription_id: Mapped[str | None] = mapped_column(String(STRIPE_ID), nullable=True)
    tier: Mapped[str] = mapped_column(String(64), default="free")
    status: Mapped[str] = mapped_column(String(32), default="")  # "" : never subscribed
    cancel_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # Unix time
    current_period_end: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    shortfall: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())


class BillingTierRow(Base):
    __tablename__ = "billing_tiers"

    price: Mapped[str] = mapped_column(String(STRIPE_ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    monthly_credits: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)  # cents a month
    currency: Mapped[str] = mapped_column(String(8))
    product: Mapped[str] = mapped_column(String(STRIPE_ID), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())


class BillingPackRow(Base):
    __tablename__ = "billing_packs"

    session: Mapped[str] = mapped_column(String(STRIPE_ID), primary_key=True)  # cs_...
    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    payment_intent: Mapped[str | None] = mapped_column(
        String(STRIPE_ID), nullable=True, unique=True
    )
    credits: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)  # cents paid
    removed: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())


class StripeEventRow(Base):
    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(STRIPE_ID), primary_key=True)  # evt_...
    type: Mapped[str] = mapped_column(String(64))
    created: Mapped[int] = mapped_column(BigInteger)  # the event's own time (Unix)
    account_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # applied | ignored
    detail: Mapped[str] = mapped_column(Text, default="")
    processed_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())


class BillingMailKeyRow(Base):
    __tablename__ = "billing_mail_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
