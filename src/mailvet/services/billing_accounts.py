"""An account's billing row (adapters/db/billing_models.BillingAccountRow), made on first
need by whichever comes first: the customer made for a Checkout (services/billing_checkout.py)
or a Stripe event's effect (services/billing_events.py). In the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.billing_models import BillingAccountRow
from mailvet.adapters.db.database import dialect_insert
from mailvet.domain.billing import FREE


async def ensure_row(session: AsyncSession, account_id: str, now: datetime) -> None:
    """The account's row, made (free tier, no customer) when absent."""
    await session.execute(
        dialect_insert(session, BillingAccountRow)
        .values(
            account_id=account_id,
            customer=None,
            tier=FREE.name,
            status="",
            version=0,
            shortfall=0,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )


async def set_fields(
    session: AsyncSession,
    account_id: str,
    now: datetime,
    *,
    only_if: ColumnElement[bool] | None = None,
    **values: Any,
) -> None:
    """Set `values` on the account's row, made first when absent; with `only_if`, only when
    the row meets it (a customer set once: `BillingAccountRow.customer.is_(None)`)."""
    await ensure_row(session, account_id, now)
    await session.execute(
        update(BillingAccountRow)
        .where(BillingAccountRow.account_id == account_id, true() if only_if is None else only_if)
        .values(updated_at=now, **values)
    )
