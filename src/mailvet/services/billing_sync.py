"""`mailvet billing sync` (issue 10 §2): Stripe's prices of the configured product(s)
(MAILVET_STRIPE_CREDITS_PRODUCT) mirrored into `billing_tiers`, and the tiers read back.

`sync_tiers` reads every price of each product (active or not) and makes of each a tier
(domain.billing.tier_from_price: a monthly price with a whole `metadata.credits`); a price
that is none, or whose name or label is longer than the table holds, is skipped, with why.
One row per price (a tier's name may have several prices: a price changed in Stripe is a new
price, the old one archived, and the old one's subscribers keep being granted their credits
by it). Then, in the caller's transaction:

- a price not stored is added (an archived one too, as an inactive tier: a subscription to
  it still needs its tier for its invoices' credits);
- a stored price whose fields changed is updated (name, label, credits, amount, currency,
  product, active); one that did not is left as it is but for `synced_at`;
- a stored price gone from the products (deleted, or in a product no longer configured)
  becomes inactive. Never deleted: accounts' subscriptions name it.
- Two active prices naming one tier: both are kept, the one offered (`tiers`) is the one of
  the lowest id, and the report says so: archive the other in Stripe.

`tiers` reads the table: the pricing page's and the subscribe form's (active ones, one per
name), the webhook's decisions (every price, active or not: `active_only=False`); the free
tier is not stored (domain.billing.FREE).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.billing_models import BillingTierRow
from mailvet.domain.billing import Tier, tier_from_price
from mailvet.domain.payments import Payments, Price
from mailvet.logs import logger

Outcome = Literal["added", "updated", "unchanged", "deactivated"]
NAME_MAX = 64  # BillingTierRow.name
LABEL_MAX = 200  # BillingTierRow.label


class TierSynced(msgspec.Struct, frozen=True, kw_only=True):
    """What the sync did to one stored tier (`tier`: as it is stored now)."""

    outcome: Outcome
    tier: Tier
    product: str


class PriceSkipped(msgspec.Struct, frozen=True, kw_only=True):
    """A price that is no tier, or not this sync's (why: `reason`)."""

    price: str
    product: str
    reason: str


class SyncReport(msgspec.Struct, frozen=True, kw_only=True):
    tiers: tuple[TierSynced, ...] = ()
    skipped: tuple[PriceSkipped, ...] = ()
    notes: tuple[str, ...] = ()  # two active prices for one tier name: which is offered

    def count(self, outcome: Outcome) -> int:
        return sum(1 for t in self.tiers if t.outcome == outcome)

    @property
    def added(self) -> int:
        return self.count("added")

    @property
    def updated(self) -> int:
        return self.count("updated")

    @property
    def unchanged(self) -> int:
        return self.count("unchanged")

    @property
    def deactivated(self) -> int:
        return self.count("deactivated")


async def sync_tiers(
    session: AsyncSession, payments: Payments, products: Sequence[str], *, now: datetime
) -> SyncReport:
    """Mirror the products' prices into billing_tiers in `session` (not committed here); see
    the module's docstring. Raises PaymentsError when Stripe fails (nothing written then: the
    prices are all read before the first write)."""
    if not products:
        raise ValueError("no product to sync (MAILVET_STRIPE_CREDITS_PRODUCT)")
    prices = [
        price for product in dict.fromkeys(products) for price in await payments.prices(product)
    ]
    stored = {row.price: row for row in (await session.scalars(select(BillingTierRow))).all()}

    skipped: list[PriceSkipped] = []
    synced: list[TierSynced] = []
    seen: set[str] = set()
    for price in prices:
        tier = tier_from_price(price)
        reason = why_not(price) if tier is None else too_long(tier)
        if tier is None or reason:
            skipped.append(PriceSkipped(price=price.id, product=price.product, reason=reason))
            continue
        seen.add(price.id)
        synced.append(_upsert(session, stored.get(price.id), tier, price.product, now))
    for price_id, row in sorted(stored.items()):
        if price_id in seen:
            continue
        row.synced_at = now
        if row.active:  # gone from the products: kept, for its subscribers
            row.active = False
            synced.append(TierSynced(outcome="deactivated", tier=_tier(row), product=row.product))
    notes = _doubled(t.tier for t in synced if t.tier.active)
    await session.flush()
    report = SyncReport(tiers=tuple(synced), skipped=tuple(skipped), notes=tuple(notes))
    logger(__name__).info(
        "billing_tiers_synced",
        added=report.added,
        updated=report.updated,
        deactivated=report.deactivated,
        skipped=len(report.skipped),
    )
    return report


async def tiers(session: AsyncSession, *, active_only: bool = True) -> list[Tier]:
    """The stored tiers, cheapest first (then by name): with `active_only`, the ones offered
    (active, one per name: of two active prices naming one tier, the lowest id's); else
    every price's, active or not (what an invoice's price is looked up in). The free tier
    is not among them (domain.billing.FREE)."""
    query = select(BillingTierRow).order_by(
        BillingTierRow.amount, BillingTierRow.name, BillingTierRow.price
    )
    if not active_only:
        return [_tier(row) for row in (await session.scalars(query)).all()]
    query = query.where(BillingTierRow.active.is_(True))
    offered: dict[str, Tier] = {}
    for row in (await session.scalars(query)).all():
        tier = _tier(row)
        kept = offered.get(tier.name)
        if kept is None or (tier.price or "") < (kept.price or ""):
            offered[tier.name] = tier
    return sorted(offered.values(), key=lambda t: (t.amount, t.name))


def too_long(tier: Tier) -> str:
    """Why the table cannot hold `tier` ("" when it can)."""
    if len(tier.name) > NAME_MAX:
        return f"metadata.tier is longer than {NAME_MAX} characters"
    if len(tier.label) > LABEL_MAX:
        return f"its label is longer than {LABEL_MAX} characters"
    return ""


def _doubled(active: Iterable[Tier]) -> list[str]:
    """A note for each tier name that two active prices give."""
    prices: dict[str, list[str]] = {}
    for tier in active:
        prices.setdefault(tier.name, []).append(tier.price or "")
    return [
        f"tier {name!r} has {len(ids)} active prices ({', '.join(sorted(ids))}): {min(ids)} is"
        " offered; archive the others in Stripe"
        for name, ids in sorted(prices.items())
        if len(ids) > 1
    ]


def why_not(price: Price) -> str:
    """Why `price` is no tier (tier_from_price gave None)."""
    if price.interval is None:
        return "a one-off price, not a monthly one"
    if price.interval != "month":
        return f"billed every {price.interval}, not monthly"
    if "credits" not in price.metadata:
        return "no metadata.credits"
    return f"metadata.credits {price.metadata['credits']!r} is not a whole number"


def _upsert(
    session: AsyncSession, row: BillingTierRow | None, tier: Tier, product: str, now: datetime
) -> TierSynced:
    fields = {
        "name": tier.name,
        "label": tier.label,
        "monthly_credits": tier.monthly_credits,
        "amount": tier.amount,
        "currency": tier.currency,
        "product": product,
        "active": tier.active,
    }
    if row is None:
        session.add(BillingTierRow(price=tier.price, synced_at=now, **fields))
        return TierSynced(outcome="added", tier=tier, product=product)
    changed = _differs(row, fields.items())
    for key, value in fields.items():
        setattr(row, key, value)
    row.synced_at = now
    outcome: Outcome = "unchanged"
    if changed:
        outcome = "deactivated" if changed == {"active"} and not tier.active else "updated"
    return TierSynced(outcome=outcome, tier=tier, product=product)


def _differs(row: BillingTierRow, fields: Iterable[tuple[str, object]]) -> set[str]:
    return {key for key, value in fields if getattr(row, key) != value}


def _tier(row: BillingTierRow) -> Tier:
    return Tier(
        name=row.name,
        label=row.label,
        monthly_credits=row.monthly_credits,
        amount=row.amount,
        currency=row.currency,
        price=row.price,
        active=row.active,
    )
