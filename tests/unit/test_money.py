"""domain/money.py: amounts in the currency's smallest unit (Stripe's) and billing days, in
the mails' form and the pages' short one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailvet.domain.money import ZERO_DECIMAL, day, decimals, money

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("amount", "currency", "mail", "page"),
    [
        (1000, "usd", "$10.00 USD", "$10"),
        (2990, "usd", "$29.90 USD", "$29.90"),
        (5, "usd", "$0.05 USD", "$0.05"),
        (123456789, "usd", "$1,234,567.89 USD", "$1,234,567.89"),
        (500, "eur", "€5.00 EUR", "€5"),
        (750, "EUR", "€7.50 EUR", "€7.50"),
        (1250, "chf", "12.50 CHF", "12.50 CHF"),
        # zero-decimal: the amount is in yen, won, ... (it showed 1/100 of it on the pages)
        (500, "jpy", "¥500 JPY", "¥500"),
        (1_500_000, "krw", "1,500,000 KRW", "1,500,000 KRW"),
        (3000, "xof", "3,000 XOF", "3,000 XOF"),
        # ISK stays two-decimal in Stripe's API (100 is one króna)
        (50000, "isk", "500.00 ISK", "500 ISK"),
        # three-decimal: thousandths
        (5120, "kwd", "5.120 KWD", "5.120 KWD"),
        (-1234, "usd", "-$12.34 USD", "-$12.34"),
        (100, "u\nsd", "1.00 USD", "1 USD"),  # no control character shown
    ],
)
def test_an_amount_in_both_forms(amount: int, currency: str, mail: str, page: str) -> None:
    assert money(amount, currency) == mail
    assert money(amount, currency, short=True) == page


def test_the_zero_decimal_currencies_are_stripes() -> None:
    assert decimals("JPY") == 0 and decimals("usd") == 2 and decimals("bhd") == 3
    assert {"jpy", "krw", "vnd", "clp", "ugx", "xaf", "xof", "xpf", "bif"} <= ZERO_DECIMAL
    assert "isk" not in ZERO_DECIMAL and len(ZERO_DECIMAL) == 16


def test_a_day_in_words_or_iso() -> None:
    ends = int(datetime(2027, 1, 15, 23, 59, tzinfo=UTC).timestamp())
    assert day(ends) == "15 January 2027"
    assert day(ends, iso=True) == "2027-01-15"
    assert day(int(datetime(2027, 3, 1, tzinfo=UTC).timestamp()) - 1) == "28 February 2027"
    assert day(None) == day(0) == day(None, iso=True) == ""


# the mails' cases (services/billing_mail.py shows these)
@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (1234, "usd", "$12.34 USD"),
        (5, "usd", "$0.05 USD"),
        (123456789, "usd", "$1,234,567.89 USD"),
        (500, "eur", "€5.00 EUR"),
        (500, "jpy", "¥500 JPY"),
        (1200, "chf", "12.00 CHF"),
    ],
)
def test_money_is_shown_in_units_with_the_currency(amount: int, currency: str, shown: str) -> None:
    assert money(amount, currency) == shown


def test_a_unix_time_is_shown_as_its_utc_day() -> None:
    assert day(int(datetime(2027, 1, 15, 9, 30, tzinfo=UTC).timestamp())) == "15 January 2027"
    assert day(int(datetime(2027, 3, 1, 0, 0, tzinfo=UTC).timestamp()) - 1) == ("28 February 2027")
