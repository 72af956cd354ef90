"""services/invoice_cache.py: an account's invoices kept `ttl` seconds for the customer they
were read for, forgotten on demand, at most `size` accounts."""

from __future__ import annotations

import pytest

from mailvet.domain.payments import Invoice
from mailvet.services.invoice_cache import InvoiceCache

pytestmark = pytest.mark.unit


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def invoice(ident: str) -> Invoice:
    return Invoice(id=ident, customer="cus_a", status="paid")


def test_a_list_is_kept_for_its_ttl_and_its_customer_only() -> None:
    ticks = Ticks()
    cache = InvoiceCache(60, clock=ticks)
    assert cache.get("acc", "cus_a") is None
    cache.put("acc", "cus_a", [invoice("in_1")])
    ticks.now += 59.9
    assert cache.get("acc", "cus_a") == [invoice("in_1")]
    assert cache.get("acc", "cus_b") is None  # another customer: not this list
    assert cache.get("other", "cus_a") is None
    ticks.now += 0.1
    assert cache.get("acc", "cus_a") is None  # expired


def test_forget_and_the_bound() -> None:
    cache = InvoiceCache(60, size=2, clock=Ticks())
    cache.put("a", "cus_a", [invoice("in_a")])
    cache.put("b", "cus_b", [])
    cache.forget("a")
    assert cache.get("a", "cus_a") is None and cache.get("b", "cus_b") == []
    cache.put("a", "cus_a", [])
    cache.put("c", "cus_c", [])  # a third: the oldest (b) goes
    assert cache.get("b", "cus_b") is None
    assert cache.get("a", "cus_a") == [] and cache.get("c", "cus_c") == []
    got = cache.get("a", "cus_a")
    assert got is not None
    got.append(invoice("in_x"))  # a copy: the kept list is not changed through it
    assert cache.get("a", "cus_a") == []
