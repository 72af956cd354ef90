"""`mailvet billing sync` (services/billing_sync.py, cli_billing.py) through the real `stripe`
client and StripeGateway on tests/fakestripe: the products' tier prices mirrored into
billing_tiers, twice to the same table; a price archived or gone makes its tier inactive
(never deleted); a price that is no tier is skipped with why; two prices naming one tier:
both kept (one row per price), one offered, said; the command's refusals and its output."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from mailvet.adapters.db import migrate
from mailvet.adapters.db.billing_models import BillingTierRow
from mailvet.adapters.db.database import Database
from mailvet.adapters.payments.stripe_gateway import StripeGateway
from mailvet.cli import app
from mailvet.domain.billing import Tier
from mailvet.domain.payments import PaymentsError
from mailvet.services.billing_sync import SyncReport, sync_tiers, tiers
from tests import fakestripe
from tests.fakestripe import API_KEY, StripeWorld
from tests.pg import opened

pytestmark = pytest.mark.integration

PRODUCT = "prod_mailvet_tiers"
OTHER = "prod_mailvet_more"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {API_KEY}"}
stripe_world = fakestripe.stripe_world  # the fixtures
stripe_api = fakestripe.stripe_api


def price(world: StripeWorld, product: str = PRODUCT, **form: str) -> str:
    """A price made on the fake, as the Stripe dashboard would; its id."""
    got = httpx.post(
        f"{world.api_base}/v1/prices",
        data={"product": product, "currency": "usd", **form},
        headers=AUTH,
        timeout=10,
    )
    assert got.status_code == 200, got.text
    ident: str = got.json()["id"]
    return ident


def tier_price(
    world: StripeWorld, name: str, credits: int, amount: int, product: str = PRODUCT
) -> str:
    return price(
        world,
        product,
        unit_amount=str(amount),
        nickname=name.title(),
        **{"recurring[interval]": "month", "metadata[credits]": str(credits)},
        **{"metadata[tier]": name},
    )


def archive(world: StripeWorld, price_id: str) -> None:
    """The price archived in Stripe (active=false; the fake has no update route)."""
    world.fake.prices[price_id]["active"] = False


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path}/mailvet.db"
    await migrate.upgrade_async(url)
    async with opened(url) as database:
        yield database


@pytest.fixture
async def gateway(stripe_api: StripeWorld) -> AsyncIterator[StripeGateway]:
    g = StripeGateway(API_KEY, api_base=stripe_api.api_base, max_network_retries=0)
    try:
        yield g
    finally:
        await g.aclose()


async def sync(
    db: Database, gateway: StripeGateway, *products: str, at: datetime = T0
) -> SyncReport:
    async with db.unit_of_work(write=True) as session:
        return await sync_tiers(session, gateway, products or (PRODUCT,), now=at)


async def stored(db: Database) -> dict[str, tuple[object, ...]]:
    async with db.session_maker() as session:
        rows = (await session.scalars(select(BillingTierRow))).all()
        return {
            r.name: (
                r.label,
                r.monthly_credits,
                r.amount,
                r.currency,
                r.price,
                r.product,
                r.active,
                r.synced_at,
            )
            for r in rows
        }


async def read_tiers(db: Database, *, active_only: bool = True) -> list[Tier]:
    async with db.session_maker() as session:
        return await tiers(session, active_only=active_only)


def outcomes(report: SyncReport) -> dict[str, str]:
    return {t.tier.name: t.outcome for t in report.tiers}


async def test_the_tiers_are_mirrored_and_a_second_sync_changes_nothing(
    db: Database, gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    pro = tier_price(stripe_api, "pro", 50_000, 19_900)
    starter = tier_price(stripe_api, "starter", 5_000, 2_900)
    price(stripe_api, unit_amount="1000")  # a one-off price of the product: no tier
    tier_price(stripe_api, "elsewhere", 1, 1, product="prod_not_configured")

    first = await sync(db, gateway)
    assert outcomes(first) == {"pro": "added", "starter": "added"}
    assert (first.added, first.updated, first.deactivated, len(first.skipped)) == (2, 0, 0, 1)
    assert await read_tiers(db) == [
        Tier(
            name="starter",
            label="Starter",
            monthly_credits=5_000,
            amount=2_900,
            currency="usd",
            price=starter,
        ),
        Tier(
            name="pro",
            label="Pro",
            monthly_credits=50_000,
            amount=19_900,
            currency="usd",
            price=pro,
        ),
    ]
    before = await stored(db)
    assert before["pro"][5] == PRODUCT

    later = T0 + timedelta(days=1)
    again = await sync(db, gateway, at=later)
    assert outcomes(again) == {"pro": "unchanged", "starter": "unchanged"}
    assert (again.added, again.updated, again.deactivated) == (0, 0, 0)
    after = await stored(db)
    assert {n: v[:7] for n, v in after.items()} == {n: v[:7] for n, v in before.items()}
    assert {v[7] for v in after.values()} == {later}  # synced_at says when it was looked at


async def test_prices_that_are_no_tier_are_skipped_with_why(
    db: Database, gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    one_off = price(stripe_api, unit_amount="1000", **{"metadata[credits]": "1000"})
    yearly = price(
        stripe_api,
        unit_amount="99000",
        **{"recurring[interval]": "year", "metadata[credits]": "600000"},
    )
    bare = price(stripe_api, unit_amount="500", **{"recurring[interval]": "month"})
    odd = price(
        stripe_api,
        unit_amount="500",
        **{"recurring[interval]": "month", "metadata[credits]": "lots"},
    )

    report = await sync(db, gateway)
    assert report.tiers == ()
    why = {s.price: s.reason for s in report.skipped}
    assert why == {
        one_off: "a one-off price, not a monthly one",
        yearly: "billed every year, not monthly",
        bare: "no metadata.credits",
        odd: "metadata.credits 'lots' is not a whole number",
    }
    assert await stored(db) == {}


async def test_a_price_archived_or_gone_makes_its_tier_inactive_never_deleted(
    db: Database, gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    pro = tier_price(stripe_api, "pro", 50_000, 19_900)
    starter = tier_price(stripe_api, "starter", 5_000, 2_900)
    team = tier_price(stripe_api, "team", 200_000, 49_900)
    await sync(db, gateway)

    archive(stripe_api, starter)
    del stripe_api.fake.prices[team]  # gone from the product altogether
    report = await sync(db, gateway)
    assert outcomes(report) == {"pro": "unchanged", "starter": "deactivated", "team": "deactivated"}
    assert report.deactivated == 2
    assert [t.name for t in await read_tiers(db)] == ["pro"]
    everything = {t.name: t for t in await read_tiers(db, active_only=False)}
    assert set(everything) == {"pro", "starter", "team"}
    assert not everything["starter"].active and everything["starter"].price == starter
    assert not everything["team"].active and everything["team"].price == team
    assert everything["pro"].active and everything["pro"].price == pro

    again = await sync(db, gateway)  # inactive stays inactive, said once
    assert again.deactivated == 0
    assert outcomes(again) == {"pro": "unchanged", "starter": "unchanged"}

    stripe_api.fake.prices[starter]["active"] = True  # unarchived
    back = await sync(db, gateway)
    assert outcomes(back)["starter"] == "updated"
    assert [t.name for t in await read_tiers(db)] == ["starter", "pro"]


async def test_a_changed_price_updates_its_tier(
    db: Database, gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    pro = tier_price(stripe_api, "pro", 50_000, 19_900)
    await sync(db, gateway)
    stripe_api.fake.prices[pro]["metadata"].update(label="Pro (2027)", credits="60000")

    report = await sync(db, gateway)
    assert outcomes(report) == {"pro": "updated"}
    (tier,) = await read_tiers(db)
    assert (tier.label, tier.monthly_credits) == ("Pro (2027)", 60_000)


async def test_a_new_price_for_a_tier_keeps_the_old_ones_subscribers_granted(
    db: Database, gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    """Stripe changes a price by a new one and the old one archived: the new one is offered,
    the old one stays (inactive) so that its subscribers' invoices still find their tier."""
    old = tier_price(stripe_api, "pro", 50_000, 19_900)
    await sync(db, gateway)
    archive(stripe_api, old)
    new = tier_price(stripe_api, "pro", 60_000, 24_900, product=OTHER)

    report = await sync(db, gateway, PRODUCT, OTHER)
    assert {t.tier.price: t.outcome for t in report.tiers} == {old: "deactivated", new: "added"}
    assert report.notes == () and report.skipped == ()
    (offered,) = await read_tiers(db)
    assert (offered.price, offered.monthly_credits, offered.amount) == (new, 60_000, 24_900)
    every = {t.price: t for t in await read_tiers(db, active_only=False)}
    assert set(every) == {old, new}
    assert (every[old].name, every[old].monthly_credits, every[old].active) == (
        "pro",
        50_000,
        False,
    )


async def test_two_active_prices_of_one_tier_offer_one_and_it_is_said(
    db: Database, gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    first = tier_price(stripe_api, "pro", 50_000, 19_900)
    second = tier_price(stripe_api, "pro", 60_000, 24_900)
    report = await sync(db, gateway)
    assert report.added == 2
    low, high = sorted((first, second))
    assert report.notes == (
        f"tier 'pro' has 2 active prices ({low}, {high}): {low} is offered;"
        " archive the others in Stripe",
    )
    assert [t.price for t in await read_tiers(db)] == [low]
    assert len(await read_tiers(db, active_only=False)) == 2


async def test_a_price_renamed_in_stripe_is_renamed_here(
    db: Database, gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    pro = tier_price(stripe_api, "pro", 50_000, 19_900)
    await sync(db, gateway)
    stripe_api.fake.prices[pro]["metadata"]["tier"] = "professional"

    report = await sync(db, gateway)
    assert [(t.tier.name, t.outcome) for t in report.tiers] == [("professional", "updated")]
    assert [(t.name, t.price) for t in await read_tiers(db)] == [("professional", pro)]


async def test_a_name_or_label_longer_than_the_table_holds_is_skipped(
    db: Database, gateway: StripeGateway, stripe_api: StripeWorld
) -> None:
    long_name = tier_price(stripe_api, "n" * 65, 5_000, 2_900)
    long_label = price(
        stripe_api,
        unit_amount="2900",
        **{"recurring[interval]": "month", "metadata[credits]": "5000"},
        **{"metadata[tier]": "ok", "metadata[label]": "L" * 201},
    )
    report = await sync(db, gateway)
    assert report.tiers == ()
    assert {s.price: s.reason for s in report.skipped} == {
        long_name: "metadata.tier is longer than 64 characters",
        long_label: "its label is longer than 200 characters",
    }
    assert await stored(db) == {}


async def test_stripe_refusing_is_an_error_and_writes_nothing(
    db: Database, stripe_api: StripeWorld
) -> None:
    tier_price(stripe_api, "pro", 50_000, 19_900)
    down = StripeGateway("sk_live_wrong", api_base=stripe_api.api_base, max_network_retries=0)
    try:
        with pytest.raises(PaymentsError):
            await sync(db, down)
    finally:
        await down.aclose()
    assert await stored(db) == {}


# --- the command -------------------------------------------------------------------------


def mailvet(env: Mapping[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=dict(env))


@pytest.fixture
def env(tmp_path: Path, stripe_api: StripeWorld) -> dict[str, str]:
    return {
        "MAILVET_DATA_DIR": str(tmp_path / "data"),
        "MAILVET_DATABASE_URL": "",
        "MAILVET_BILLING": "stripe",
        "MAILVET_STRIPE_API_KEY": API_KEY,
        "MAILVET_STRIPE_API_BASE": stripe_api.api_base,
        "MAILVET_STRIPE_WEBHOOK_SECRET": "whsec_test_sync",
        "MAILVET_STRIPE_CREDITS_PRODUCT": f"{PRODUCT},{OTHER}",
        "MAILVET_STRIPE_MAX_NETWORK_RETRIES": "0",
    }


def stored_by_cli(env: Mapping[str, str]) -> list[Tier]:
    async def read() -> list[Tier]:
        async with opened(f"sqlite+aiosqlite:///{env['MAILVET_DATA_DIR']}/mailvet.db") as db:
            return await read_tiers(db, active_only=False)

    return asyncio.run(read())


def test_the_command_syncs_and_says_what_it_did(
    env: dict[str, str], stripe_api: StripeWorld
) -> None:
    pro = tier_price(stripe_api, "pro", 50_000, 19_900)
    starter = tier_price(stripe_api, "starter", 5_000, 2_900, product=OTHER)
    one_off = price(stripe_api, unit_amount="1000")

    got = mailvet(env, "billing", "sync")
    assert got.exit_code == 0, got.output
    lines = got.stdout.splitlines()
    assert (
        f"added        pro  'Pro'  50,000 credits a month  $199.00 USD  {pro}  {PRODUCT}" in lines
    )
    assert (
        f"added        starter  'Starter'  5,000 credits a month  $29.00 USD  {starter}  {OTHER}"
        in lines
    )
    assert f"skipped      {one_off}  {PRODUCT}: a one-off price, not a monthly one" in lines
    assert lines[-1] == "2 added, 0 updated, 0 unchanged, 0 deactivated, 1 skipped"
    assert {t.name for t in stored_by_cli(env)} == {"pro", "starter"}

    archive(stripe_api, starter)
    again = mailvet(env, "billing", "sync")
    assert again.exit_code == 0, again.output
    assert (
        again.stdout.splitlines()[-1] == "0 added, 0 updated, 1 unchanged, 1 deactivated, 1 skipped"
    )
    assert any(
        line.startswith("deactivated  starter") and line.endswith("(inactive)")
        for line in again.stdout.splitlines()
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MAILVET_BILLING": "off"}, "MAILVET_BILLING=stripe"),
        ({"MAILVET_STRIPE_CREDITS_PRODUCT": ""}, "MAILVET_STRIPE_CREDITS_PRODUCT"),
        ({"MAILVET_STRIPE_API_KEY": ""}, "MAILVET_STRIPE_API_KEY"),
    ],
)
def test_the_command_refuses_without_stripe_or_a_product(
    env: dict[str, str], change: dict[str, str], message: str
) -> None:
    got = mailvet({**env, **change}, "billing", "sync")
    assert got.exit_code == 2
    assert got.stdout == ""
    assert got.stderr.startswith("mailvet: error: ") and message in got.stderr


def test_the_command_says_when_stripe_refuses(env: dict[str, str]) -> None:
    got = mailvet({**env, "MAILVET_STRIPE_API_KEY": "sk_live_wrong"}, "billing", "sync")
    assert got.exit_code == 1
    # the gateway's warning (a log line) comes first, then what the command says
    assert got.stderr.splitlines()[-1] == "mailvet: error: Stripe: Invalid API Key provided."
    assert "sk_live_wrong" not in got.stderr
    assert stored_by_cli(env) == []
