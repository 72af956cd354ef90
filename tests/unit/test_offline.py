"""syntax_columns (the per-domain fast path of syntax-only lists) says what offline_verdict says."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest
from email_validator import EmailNotValidError
from email_validator.syntax import validate_email_domain_name

from mailvet.domain.address import cached_domain, check_syntax, reference_check
from mailvet.domain.offline import (
    clear_caches,
    never_in_cells,
    offline_verdict,
    syntax_columns,
    syntax_tails,
)
from mailvet.domain.risk import domain_risk
from mailvet.domain.verdict import RESULT_COLUMNS
from tests.unit.test_address import corpus


def one_by_one(cells: list[str]) -> list[tuple[str, ...]]:
    return [offline_verdict(check_syntax(c.strip()), c.strip()).columns() for c in cells]


def test_columns_equal_the_verdict_of_each_cell_on_a_large_corpus() -> None:
    cells = corpus(60_000, seed=11)
    assert syntax_columns(cells) == one_by_one(cells)


# domains whose verdict differs: typo, disposable, free, popular, IDN (Unicode and A-label),
# upper case, a subdomain of a disposable one, invalid ones
DOMAINS = [
    "gmail.com",
    "GMail.Com",
    "gmial.com",
    "gmail.con",
    "mailinator.com",
    "x.mailinator.com",
    "yahoo.co.uk",
    "example.org",
    "münchen.de",
    "MÜNCHEN.de",
    "xn--mnchen-3ya.de",
    "例え.jp",
    "bücher.de",
    "localhost",
    "a.test",
    "under_score.com",
    "-lead.com",
    "",
    "gmail,com",
    "gmailcom",
    "outlook.",
    "[127.0.0.1]",
    "x" * 60 + ".com",
    "ünï" + "c" * 50 + ".de",
]
LOCALS = [
    "ann",
    "Ann.Lee",
    "POSTMASTER",
    "Info",
    "noreply",
    "No.Reply+news",
    "sales+x",
    "a+b",
    "josé",
    "ü",
    "a..b",
    ".a",
    "a.",
    "",
    "x" * 64,
    "x" * 190,
    "x" * 200,
    "a@b",
    '"q"',
    "o'neil",
]


def test_columns_equal_the_verdict_of_each_cell_across_domains_and_local_parts() -> None:
    cells = [f"{local}@{domain}" for domain in DOMAINS for local in LOCALS]
    cells += ["  pad@gmail.com ", "\tTab@Example.org", "Name <ann@gmail.com>", "ann", "@", ""]
    assert syntax_columns(cells) == one_by_one(cells)


def test_the_length_limit_holds_for_every_form_of_the_address() -> None:
    """254 octets as written, normalized and with the A-label domain: around the limit the
    fast path must answer as check_syntax, for ASCII, Unicode and A-label domains."""
    cells = []
    for domain in ("example.com", "münchen.de", "xn--mnchen-3ya.de", "例え.jp", "EXAMPLE.COM"):
        base = 254 - len(f"@{domain}".encode())
        for extra in range(-30, 4):
            cells.append("y" * (base + extra) + "@" + domain)
    verdicts = one_by_one(cells)
    assert {v[1] for v in verdicts} == {"invalid_syntax", "not_checked"}  # both sides are hit
    assert syntax_columns(cells) == verdicts


def test_the_same_domain_string_in_any_order_gives_the_same_columns() -> None:
    cells = [f"{local}@{domain}" for domain in DOMAINS for local in LOCALS]
    random.Random(3).shuffle(cells)
    first = syntax_columns(cells)
    assert syntax_columns(cells) == first == one_by_one(cells)


def test_tails_are_the_columns_joined() -> None:
    cells = corpus(20_000, seed=12) + [
        f"{local}@{domain}" for domain in DOMAINS for local in LOCALS
    ]
    cells += [
        "  pad@gmail.com ",
        "\tTab@Example.org",
        "x@gmail.com ",
        " x@gmail.com",
        "x@ gmail.com",
    ]
    columns = one_by_one(cells)
    for sep in (",", ";", "\t"):
        tails, reasons, started = syntax_tails(cells, sep)
        assert tails == [sep + sep.join(row) for row in columns]
        assert reasons == [row[1] for row in columns]
        assert not started  # nothing asked


def test_without_the_network_catch_all_is_an_empty_cell() -> None:
    # no catch-all probe was made: not established, so neither "true" nor "false"
    cells = ["ann@example.com", "Bo@gmial.com", "x@mailinator.com", "not an address", "jörg@x.de"]
    at = RESULT_COLUMNS.index("mailvet_catch_all")
    assert [row[at] for row in one_by_one(cells)] == [""] * len(cells)
    assert [row[at] for row in syntax_columns(cells)] == [""] * len(cells)
    tails, _, _ = syntax_tails(cells, ";")
    assert [tail.split(";")[1 + at] for tail in tails] == [""] * len(cells)


STARTS = "=+-@\t\r"


@pytest.mark.parametrize(
    "cell",
    [
        "=1+x@gmail.com",
        "+31@x.com",
        "-a@x.com",
        "Name <=x@y.com>",
        "mailto:=x@gmail,com",
        "=x@gmial.com",
        "  -pad@gmail.com ",
    ],
)
def test_tails_tell_a_cell_that_starts_with_a_given_character(cell: str) -> None:
    plain = ["ann@gmail.com", "bad@@x", "Bob <bob@x.org>"]
    assert syntax_tails(plain, ",", STARTS)[2] is False
    columns = one_by_one([cell])[0]
    expected = any(c[:1] in STARTS for c in columns if c)
    assert syntax_tails([*plain, cell], ",", STARTS)[2] is expected


def test_tails_tell_formula_starts_as_the_cells_on_the_corpus() -> None:
    cells = corpus(20_000, seed=14)
    seen = set()
    for i in range(0, len(cells), 20):
        part = cells[i : i + 20]
        expected = any(c[:1] in STARTS for row in one_by_one(part) for c in row if c)
        assert syntax_tails(part, ";", STARTS)[2] is expected
        seen.add(expected)
    assert seen == {True, False}


def test_no_cell_holds_a_character_never_in_cells() -> None:
    """The characters never_in_cells vouches for (what lets a CSV skip quoting the cells)
    are in no cell of any verdict of the corpus, valid or not, with or without suggestion."""
    never = {chr(c) for c in range(128) if never_in_cells(chr(c))}
    assert {",", ";", "\t", '"', " "} <= never
    assert not never & set("'|.@-_aZ09\r\n")
    cells = corpus(40_000, seed=13) + [
        f"{local}@{domain}" for domain in DOMAINS for local in LOCALS
    ]
    held = {c for row in one_by_one(cells) for cell in row for c in cell}
    assert held & never == set()
    assert {"@", ".", "+"} <= held  # the corpus does reach the characters addresses hold


def _library_domain(domain: str) -> tuple[str, str] | None:
    try:
        info = validate_email_domain_name(domain, test_environment=False, globally_deliverable=True)
    except EmailNotValidError:
        return None
    return info["domain"], info["ascii_domain"]


def test_the_domain_shortcuts_answer_as_the_library() -> None:
    """cached_domain decides plain names and surely invalid ASCII ones without the library:
    over letters, digits, "-", "." and a few refused characters, every length and label
    shape around the limits, it answers as the library does."""
    rng = random.Random(5)
    names = {"".join(t) for k in range(7) for t in itertools.product("a0-.", repeat=k)}
    for _ in range(20_000):
        names.add(
            "".join(rng.choices("abz09-._ ;,", k=rng.randint(0, 24)))
            + rng.choice(["", ".com", ".c0", ".co.uk", "-", ".xn--p1ai"])
        )
    for _ in range(500):
        labels = (rng.choice("ax-") * rng.randint(0, 66) for _ in range(rng.randint(1, 6)))
        names.add(".".join(labels) + rng.choice(["", ".com"]))
        names.add("a" * rng.randint(240, 260) + rng.choice(["", ".com"]))
    names |= {"localhost", "a.test", "x.local", "x.invalid", "x.onion", "home.arpa", "a--b.com"}
    wrong = []
    for name in names:
        result = cached_domain(name)
        expected = _library_domain(name)
        got = None if result.error else (result.domain, result.ascii_domain)
        if got != expected:
            wrong.append(name)
    assert wrong == []


UNICODE_PIECES = (
    'aZ0._-+é\u0301\u212aKß田中ñ\u200b\u200d\u202e\u00a0 ١𝔘\ufeffＡ。．@"<>ä\u0308Åå\u030a'
)
UNICODE_DOMAINS = [
    "gmail.com",
    "münchen.de",
    "xn--mnchen-3ya.de",
    "GMAIL.COM",
    "例え.jp",
    "a.b",
    "localhost",
    "x" * 60 + ".com",
    "e\u0301x.com",
    "\u0301x.com",
    "",
]


def test_unicode_local_parts_get_the_reference_verdict() -> None:
    """Non-ASCII local parts take the library's local-part steps (cached), not its whole
    walk: NFC changes (combining marks, the Kelvin sign that becomes ASCII), RFC 2142 names,
    unsafe characters, lengths around 254 octets, every kind of domain."""
    rng = random.Random(9)
    cells = ["\u212aabuse@x.com", "jose\u0301@gmail.com", "ab\u200b@x.com", "josé@例え.jp"]
    for _ in range(15_000):
        local = "".join(rng.choices(UNICODE_PIECES, k=rng.randint(1, 12)))
        roll = rng.random()
        if roll < 0.1:
            local = "é" * rng.randint(60, 130)
        elif roll < 0.15:
            local = rng.choice(["POSTMASTER", "\u212aabuse", "Abuse"]) + rng.choice(["", "é"])
        cells.append(f"{local}@{rng.choice(UNICODE_DOMAINS)}")
    wrong = [c for c in cells if check_syntax(c)[:5] != reference_check(c)[:5]]
    assert wrong == []
    assert sum(check_syntax(c).valid for c in cells) > 1_000  # both sides are hit
    assert syntax_columns(cells) == one_by_one(cells)


def test_quoted_local_parts_get_the_reference_verdict() -> None:
    """`"inner"@domain` is unquoted here when inner is plain ASCII (a dot-atom: the address
    without quotes; anything else needs them: invalid); escapes and the rest go to the library."""
    rng = random.Random(4)
    pieces = 'aZ0._-+ @,;:<>[]()\\"\tü.'
    domains = [*UNICODE_DOMAINS, "[1.2.3.4]", "b.com>"]
    cells = []
    for _ in range(15_000):
        inner = "".join(rng.choices(pieces, k=rng.randint(0, 10)))
        roll = rng.random()
        if roll < 0.1:
            inner = "x" * rng.randint(180, 250)
        elif roll < 0.2:
            inner = rng.choice(["Postmaster", "ABUSE", "a.b", "test", "a..b", ""])
        at = rng.choice(["@", "@", "@", "", "x@"])
        cells.append(f'"{inner}"{at}{rng.choice(domains)}')
    wrong = [c for c in cells if check_syntax(c)[:5] != reference_check(c)[:5]]
    assert wrong == []
    assert sum(check_syntax(c).valid for c in cells) > 500  # both sides are hit
    assert syntax_columns(cells) == one_by_one(cells)


def test_domain_literals_get_the_reference_verdict() -> None:
    rng = random.Random(6)
    pieces = 'aZ0._-+ @,;:<>[]()\\"\tü.1'
    cells = ["a@[1.2.3.4]", "a@[IPv6:::1]", '"a"@[1.2.3.4]', "<a@[1.2.3.4]>", "Ann <a@[1.2.3.4]>"]
    for _ in range(5_000):
        local = "".join(rng.choices(pieces, k=rng.randint(0, 8)))
        literal = "".join(rng.choices("0123456789.:abcIPv6[]@ ", k=rng.randint(0, 12)))
        cells.append(f"{local}{rng.choice(['@', '@', ''])}[{literal}]")
    assert [c for c in cells if check_syntax(c)[:5] != reference_check(c)[:5]] == []
    assert syntax_columns(cells) == one_by_one(cells)


def test_the_cells_off_the_fast_path_are_counted_with_their_reason() -> None:
    cells = [
        "ann@example.com",  # the fast path
        "Bob.Smith@Example.com",  # the fast path
        "a" * 250 + "@example.com",
        "x@ example.com",
        "ä@example.com",
        "ann@[192.0.2.1]",
        "nope",
        "@example.com",
        "a..b@example.com",
        "ann@exa_mple.com",
    ]
    misses: Counter[str] = Counter()
    tails, _, _ = syntax_tails(cells, ",", misses=misses)
    assert tails == syntax_tails(cells, ",")[0]  # counting changes nothing
    assert misses == Counter(
        {
            "too long": 1,
            "blank in the domain": 1,
            "non-ASCII local part": 1,
            "quotes, brackets or angle brackets": 1,
            "no @-sign": 1,
            "empty local part": 1,
            "local part not a dot-atom": 1,
            "invalid domain": 1,
        }
    )


def test_clear_caches_leaves_them_as_a_fresh_process_has_them() -> None:
    syntax_columns(["ann@example.com", "ann@gmial.com", "x@gmail,com"])
    assert cached_domain.cache_info().currsize > 0
    clear_caches()
    assert cached_domain.cache_info().currsize == 0
    assert domain_risk.cache_info().currsize == 0
    assert syntax_columns(["ann@gmial.com"]) == one_by_one(["ann@gmial.com"])
