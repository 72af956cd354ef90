"""Billing's rows as the tests set them up: an account whose billing row names its Stripe
customer (what services/billing_checkout.customer_for leaves), and a tier as
`mailvet billing sync` mirrors it."""

from __future__ import annotations

from datetime import datetime

from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.billing_models import BillingAccountRow, BillingTierRow
from mailvet.services.accounts import create_account


async def billed_account(
    session: AsyncSession,
    *,
    email: str,
    customer: str | None,
    hasher: PasswordHasher,
    now: datetime,
) -> str:
    """A confirmed account without credits and its billing row (free tier) naming
    `customer`; its id."""
    account = await create_account(
        session, email=email, password=None, confirmed=True, credits=0, hasher=hasher, now=now
    )
    session.add(
        BillingAccountRow(
            account_id=account.id,
            customer=customer,
            tier="free",
            status="",
            version=0,
            shortfall=0,
            updated_at=now,
        )
    )
    return account.id


def tier_row(
    *,
    price: str,
    now: datetime,
    name: str = "pro",
    label: str = "Pro",
    monthly_credits: int = 5_000,
    amount: int = 2_900,
) -> BillingTierRow:
    """A monthly tier of product `prod_credits`, active."""
    return BillingTierRow(
        name=name,
        label=label,
        monthly_credits=monthly_credits,
        amount=amount,
        currency="usd",
        price=price,
        product="prod_credits",
        active=True,
        synced_at=now,
    )
