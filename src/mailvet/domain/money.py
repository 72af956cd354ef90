"""Amounts of money and billing days as people read them, one way for the pages and the mails.

An amount is in the currency's smallest unit, as Stripe gives it (domain/payments.py): cents
for most currencies, the unit itself for Stripe's zero-decimal ones (a JPY amount of 500 is
¥500), thousandths for its three-decimal ones. Two forms (`money`):

- the mails' (`short=False`): every decimal and the code, "$12.34 USD", "€5.00 EUR",
  "¥500 JPY", "12.00 CHF";
- the pages' (`short=True`): whole amounts without decimals, no code after a symbol, "$10",
  "$29.90", "¥500", "12.50 CHF".

`day`: a Unix time as the day it falls on in UTC, "15 January 2027" (the mails) or
"2027-01-15" (`iso=True`, the pages' tables); "" for none.

Pure: no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime

# Stripe's zero-decimal currencies (https://docs.stripe.com/currencies#zero-decimal): the
# amount is in units. ISK is not one: Stripe keeps it two-decimal in its API (100 is one
# króna, whole krónur only since 2023), as HUF and TWD.
ZERO_DECIMAL = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)
# Stripe's three-decimal currencies: the amount is in thousandths
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}
MAX_CODE = 8  # a currency code as shown (Stripe's are 3 letters; anything else is cut)


def decimals(currency: str) -> int:
    """How many decimals the currency's smallest unit has: 0, 2 or 3."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def money(amount: int, currency: str, *, short: bool = False) -> str:
    """`amount` (the currency's smallest unit) as shown: see the module's docstring."""
    code = currency.lower()
    places = decimals(code)
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10**places)
    figure = f"{whole:,}"
    if places and not (short and part == 0):
        figure += f".{part:0{places}d}"
    symbol = SYMBOLS.get(code, "")
    label = "".join(c for c in code.upper() if c.isascii() and c.isalpha())[:MAX_CODE]
    if short:
        return f"{sign}{symbol}{figure}" if symbol else f"{sign}{figure} {label}".rstrip()
    return f"{sign}{symbol}{figure} {label}".rstrip()


def day(unix: int | None, *, iso: bool = False) -> str:
    """The UTC day of a Unix time: "15 January 2027", or "2027-01-15" with `iso`; "" for
    none (None or 0: Stripe's "not set")."""
    if not unix:
        return ""
    at = datetime.fromtimestamp(unix, UTC)
    return at.strftime("%Y-%m-%d") if iso else f"{at.day} {at:%B %Y}"
