"""Stripe's objects read into the domain's records (adapters/payments/stripe_gateway.py's
*_record functions), for the shapes that decide credits: which line of an invoice is its
subscription's period. Shapes from Stripe's API reference (invoice line items, API
2025-03-31 and later: `parent.subscription_item_details.proration`; earlier: `proration` on
the line) and the invoice after a plan change, whose proration lines come first."""

from __future__ import annotations

from typing import Any

import pytest

from mailvet.adapters.payments.stripe_gateway import invoice_record

pytestmark = pytest.mark.unit

START, END, CHANGE = 1_800_000_000, 1_802_592_000, 1_801_000_000


def line(price: str, start: int, end: int, *, proration: bool, new_shape: bool = True) -> Any:
    if new_shape:
        return {
            "object": "line_item",
            "parent": {
                "type": "subscription_item_details",
                "subscription_item_details": {"proration": proration, "subscription": "sub_1"},
            },
            "pricing": {"price_details": {"price": price}},
            "period": {"start": start, "end": end},
        }
    return {"price": {"id": price}, "proration": proration, "period": {"start": start, "end": end}}


def invoice(*lines: Any) -> Any:
    return {
        "id": "in_1",
        "object": "invoice",
        "customer": "cus_1",
        "status": "paid",
        "parent": {"subscription_details": {"subscription": "sub_1"}},
        "lines": {"object": "list", "data": list(lines)},
    }


@pytest.mark.parametrize("new_shape", [True, False], ids=["api-2025", "older"])
def test_the_period_line_is_the_first_that_is_no_proration(new_shape: bool) -> None:
    read = invoice_record(
        invoice(
            line("price_starter", CHANGE, END, proration=True, new_shape=new_shape),
            line("price_pro", CHANGE, END, proration=True, new_shape=new_shape),
            line("price_pro", END, END + 2_592_000, proration=False, new_shape=new_shape),
        )
    )
    assert (read.price, read.period_start, read.proration) == ("price_pro", END, False)


def test_an_invoice_of_prorations_alone_says_so() -> None:
    read = invoice_record(
        invoice(
            line("price_starter", CHANGE, END, proration=True),
            line("price_pro", CHANGE, END, proration=True),
        )
    )
    assert read.proration and read.subscription == "sub_1"


def test_a_plain_period_invoice_and_one_without_lines() -> None:
    read = invoice_record(invoice(line("price_pro", START, END, proration=False)))
    assert (read.price, read.period_start, read.period_end, read.proration) == (
        "price_pro",
        START,
        END,
        False,
    )
    bare = invoice_record(invoice())
    assert (bare.price, bare.period_start, bare.proration) == (None, None, False)
