"""Syntax: the fast path must give exactly email-validator's verdict."""

from __future__ import annotations

import random
import string

import pytest
from email_validator import EmailNotValidError, validate_email

from mailvet.domain.address import check_syntax

pytestmark = pytest.mark.unit


def library(address: str) -> tuple[bool, str]:
    try:
        info = validate_email(address, check_deliverability=False, strict=True)
    except EmailNotValidError:
        return False, ""
    return True, info.normalized


ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
TRICKY = ".@\"() ,;:<>[]\\\x00\t é√ü中" + string.punctuation + string.whitespace
DOMAINS = [
    "gmail.com", "Example.ORG", "sub.domain.co.uk", "xn--exmple-cua.com", "exämple.com",
    "localhost", "a.test", "b.local", "x.invalid", "x.onion", "1.2.3.4", "[1.2.3.4]",
    "-bad.com", "bad-.com", "a..b.com", ".a.com", "a.com.", "a" * 63 + ".com", "a" * 64 + ".com",
    ".".join(["abcdefghi"] * 26) + ".com", "x.c0m", "x.123", "under_score.com", "GMAIL.COM",
    "xn--.com", "ab--cd.com", "ex-ample.museum", "a.b", "münchen.de", "xn--mnchen-3ya.de",
    "\u0301abc.com", "e\u0301xample.com", "ｅｘａｍｐｌｅ.com", "straße.de", "ü", "中国.中国",
    "bücher.example.com.", "xn--bcher-kva.com", "a\u200db.com", "١٢٣.com", "ß" * 60 + ".de",
    "é" * 63 + ".com", "Ä.COM", "xn--ls8h.la", "💩.la", "a.xn--p1ai", "пример.рф",
]


def random_local(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:
        parts = ["".join(rng.choices(ATEXT, k=rng.randint(1, 12))) for _ in range(rng.randint(1, 3))]
        return ".".join(parts)
    if kind < 0.7:
        return "x" * rng.choice([1, 63, 64, 65, 70])
    if kind < 0.8:
        return rng.choice(["Postmaster", "ABUSE", "info", "a..b", ".a", "a.", "", '"q"', '"a b"'])
    return "".join(rng.choices(ATEXT + TRICKY, k=rng.randint(0, 15)))


def corpus(n: int, seed: int = 20261127) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.7:
            domain = rng.choice(DOMAINS)
        elif roll < 0.85:
            domain = "".join(
                rng.choices(string.ascii_letters + string.digits + "-._", k=rng.randint(1, 20))
            )
        else:  # any printable ASCII, plus a real TLD half the time
            junk = "".join(rng.choices(string.printable, k=rng.randint(0, 12)))
            domain = junk + rng.choice(["", ".com", ".co.uk", "-.org"])
        address = f"{random_local(rng)}@{domain}"
        roll = rng.random()
        if roll < 0.02:
            address = address.replace("@", "")
        elif roll < 0.04:
            address = address + "@x.com"
        elif roll < 0.05:
            address = "a" * rng.randint(200, 260) + "@" + domain
        out.append(address)
    return out


def test_fast_path_agrees_with_email_validator_on_a_large_corpus() -> None:
    addresses = corpus(80_000)
    mismatches = []
    valid = 0
    for address in addresses:
        syntax = check_syntax(address)
        expected = library(address)
        valid += expected[0]
        if (syntax.valid, syntax.normalized) != expected:
            mismatches.append((address, syntax, expected))
    assert mismatches == []
    assert 0.2 * len(addresses) < valid < 0.9 * len(addresses)  # the corpus exercises both sides


@pytest.mark.parametrize(
    ("address", "normalized"),
    [
        ("Alice@Good-Mail.COM", "Alice@good-mail.com"),
        ("POSTMASTER@example.com", "postmaster@example.com"),
        ("a@xn--exmple-cua.com", "a@exämple.com"),
        ("ü@exämple.com", "ü@exämple.com"),
    ],
)
def test_normalized_form(address: str, normalized: str) -> None:
    assert check_syntax(address).normalized == normalized


@pytest.mark.parametrize(
    "address",
    ["", "plain", "a@b", "a@localhost", "a@x.test", '"quoted"@x.com', "a@[1.2.3.4]", "a..b@x.com",
     "x" * 65 + "@x.com", "Name <a@x.com>", "a b@x.com", "a@-x.com"],
)
def test_invalid(address: str) -> None:
    syntax = check_syntax(address)
    assert not syntax.valid and syntax.normalized == "" and syntax.error
