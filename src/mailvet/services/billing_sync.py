"""`mailvet billing sync` (issue 10 §2): Stripe's prices of the configured product(s)
(MAILVET_STRIPE_CREDITS_PRODUCT) mirrored into `billing_tiers`, and the tiers read back.

`sync_tiers` reads every price of each product (active or not) and makes of each a tier
(domain.billing.tier_from_price: a monthly price with a whole `metadata.credits`); a price
that is none is skipped, with why. Then, in the caller's transaction:

- a tier not stored is added (an inactive price's too, as an inactive tier: a subscription
  to an archived price still needs its tier for its invoices' credits);
- a stored tier whose fields changed is updated (label, credits, amount, currency, price,
  product, active); one that did not is left as it is but for `synced_at`;
- a stored tier whose price is gone from the products (deleted, or in a product no longer
  configured) becomes inactive. Never deleted: accounts' subscriptions name it.
- Two prices naming one tier (`metadata.tier`): one row per name, so one wins, and the report
  says so: the active one; among equals, the price the row holds already, else the lowest id.
  The other is skipped. (The row then names the winner's price only: an invoice of the loser's
  subscribers finds no tier and is deferred, so move them before archiving their price.)
- A price the table holds under another tier name (its `metadata.tier` was changed) is
  skipped: a tier is not renamed under its subscribers; give the new name a new price.

`tiers` reads the table (the pricing page, the webhook's decisions); the free tier is not
stored (domain.billing.FREE).
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
    notes: tuple[str, ...] = ()  # two prices for one tier name: which won, and why

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
    stored = {row.name: row for row in (await session.scalars(select(BillingTierRow))).all()}
    name_of_price = {row.price: row.name for row in stored.values()}

    skipped: list[PriceSkipped] = []
    renamed: set[str] = set()  # prices the table holds under another name: left as they are
    candidates: dict[str, list[tuple[Tier, Price]]] = {}
    for price in prices:
        tier = tier_from_price(price)
        if tier is None:
            skipped.append(
                PriceSkipped(price=price.id, product=price.product, reason=why_not(price))
            )
            continue
        held_by = name_of_price.get(price.id)
        if held_by is not None and held_by != tier.name:
            reason = (
                f"stored as tier {held_by!r}, its metadata.tier now says {tier.name!r}:"
                " a tier is not renamed; give the new name a new price"
            )
            skipped.append(PriceSkipped(price=price.id, product=price.product, reason=reason))
            renamed.add(price.id)
            continue
        candidates.setdefault(tier.name, []).append((tier, price))

    notes: list[str] = []
    winners: dict[str, tuple[Tier, Price]] = {}
    for name, found in candidates.items():
        held = stored[name].price if name in stored else None
        ranked = sorted(found, key=lambda tp: (not tp[0].active, tp[1].id != held, tp[1].id))
        winner = ranked[0]
        winners[name] = winner
        for _, loser in ranked[1:]:
            why = "active" if winner[0].active and not loser.active else "kept"
            notes.append(
                f"tier {name!r}: price {winner[1].id} ({why}) wins over {loser.id}, which names it"
                " too"
            )
            skipped.append(
                PriceSkipped(
                    price=loser.id,
                    product=loser.product,
                    reason=f"tier {name!r} is price {winner[1].id}'s ({why})",
                )
            )

    synced: list[TierSynced] = []
    for name, (tier, price) in sorted(winners.items()):
        synced.append(_upsert(session, stored.get(name), tier, price.product, now))
    for name, row in sorted(stored.items()):
        if name in winners or row.price in renamed:
            continue  # synced above, or its price skipped (a rename): left as it is
        row.synced_at = now
        if row.active:
            row.active = False
            synced.append(TierSynced(outcome="deactivated", tier=_tier(row), product=row.product))
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
    """The stored tiers, cheapest first (then by name); only the active ones unless
    `active_only` is False. The free tier is not among them (domain.billing.FREE)."""
    query = select(BillingTierRow).order_by(BillingTierRow.amount, BillingTierRow.name)
    if active_only:
        query = query.where(BillingTierRow.active.is_(True))
    return [_tier(row) for row in (await session.scalars(query)).all()]


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
        "label": tier.label,
        "monthly_credits": tier.monthly_credits,
        "amount": tier.amount,
        "currency": tier.currency,
        "price": tier.price,
        "product": product,
        "active": tier.active,
    }
    if row is None:
        session.add(BillingTierRow(name=tier.name, synced_at=now, **fields))
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
