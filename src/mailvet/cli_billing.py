"""`mailvet billing ...`: billing with Stripe from the shell.

    mailvet billing sync

`sync` mirrors the prices of MAILVET_STRIPE_CREDITS_PRODUCT into the tiers table
(services/billing_sync.py) and prints one line per tier (added, updated, unchanged,
deactivated), one per price skipped with why, which price won when two name one tier, and
the counts. Run it after changing the prices in Stripe: an invoice of a price not synced is
deferred until it is (the webhook answers 5xx, Stripe retries).

Errors go to stderr as `mailvet: error: ...` (as `mailvet users` does): exit 2 when billing
is not through Stripe (MAILVET_BILLING), no product or no API key is configured; 1 when
Stripe refused or could not be reached (nothing written then).

Registered in cli.py with `app.add_typer(billing_app, name="billing")`. Importing this module
costs Typer only: SQLAlchemy and stripe are imported inside the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from mailvet.cli_users import EXIT_BAD_INPUT, EXIT_REFUSED, _fail, _now, _settings

if TYPE_CHECKING:
    from mailvet.services.billing_sync import SyncReport

billing_app = typer.Typer(help="Billing with Stripe.", no_args_is_help=True)


@billing_app.command("sync")
def sync() -> None:
    """Mirror the Stripe prices of MAILVET_STRIPE_CREDITS_PRODUCT into the tiers table."""
    import asyncio

    settings = _settings()
    billing = settings.billing
    if not billing.stripe:
        _fail("billing is off: `billing sync` needs MAILVET_BILLING=stripe", EXIT_BAD_INPUT)
    if not billing.credits_product:
        _fail(
            "no product to sync: set MAILVET_STRIPE_CREDITS_PRODUCT (prod_..., comma-separated)",
            EXIT_BAD_INPUT,
        )
    if not billing.api_key:
        _fail("MAILVET_STRIPE_API_KEY is not set", EXIT_BAD_INPUT)

    async def main() -> SyncReport:
        from mailvet.adapters.db.database import make_database
        from mailvet.adapters.payments.stripe_gateway import StripeGateway
        from mailvet.bootstrap import prepare_schema
        from mailvet.services.billing_sync import sync_tiers

        await prepare_schema(settings.database)
        database = make_database(settings.database)
        gateway = StripeGateway(
            billing.api_key,
            api_base=billing.api_base,
            max_network_retries=billing.max_network_retries,
            timeout=billing.timeout,
        )
        try:
            async with database.unit_of_work(write=True) as session:
                return await sync_tiers(session, gateway, billing.credits_product, now=_now())
        finally:
            await gateway.aclose()
            await database.dispose()

    from mailvet.domain.payments import PaymentsError

    try:
        report = asyncio.run(main())
    except PaymentsError as exc:
        _fail(f"Stripe: {exc}", EXIT_REFUSED)
    for line in report_lines(report):
        typer.echo(line)


def report_lines(report: SyncReport) -> list[str]:
    """What `billing sync` prints of `report`."""
    from mailvet.domain.money import money

    lines: list[str] = []
    for synced in report.tiers:
        tier = synced.tier
        state = "" if tier.active else " (inactive)"
        lines.append(
            f"{synced.outcome:<11}  {tier.name}  {tier.label!r}  {tier.monthly_credits:,}"
            f" credits a month  {money(tier.amount, tier.currency)}  {tier.price}"
            f"  {synced.product}{state}"
        )
    for skipped in report.skipped:
        lines.append(f"{'skipped':<11}  {skipped.price}  {skipped.product}: {skipped.reason}")
    lines.extend(f"note: {note}" for note in report.notes)
    lines.append(
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged,"
        f" {report.deactivated} deactivated, {len(report.skipped)} skipped"
    )
    return lines
