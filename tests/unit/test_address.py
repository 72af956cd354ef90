"""Syntax: the fast path must give exactly `reference_check`'s verdict, and the rules hold."""

from __future__ import annotations

import random
import string

import pytest
from email_validator import EmailNotValidError, validate_email

from mailvet.domain.address import Syntax, check_syntax, reference_check
from mailvet.domain.offline import ascii_email

pytestmark = pytest.mark.unit


def strict_library(address: str) -> tuple[bool, str]:
    """Yesterday's rules: email-validator with strict=True and no optional forms."""
    try:
        info = validate_email(address, check_deliverability=False, strict=True)
    except EmailNotValidError:
        return False, ""
    return True, info.normalized


ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
TRICKY = '.@"() ,;:<>[]\\\x00\t é√ü中' + string.punctuation + string.whitespace
DOMAINS = [
    "gmail.com",
    "Example.ORG",
    "sub.domain.co.uk",
    "xn--exmple-cua.com",
    "exämple.com",
    "localhost",
    "a.test",
    "b.local",
    "x.invalid",
    "x.onion",
    "1.2.3.4",
    "[1.2.3.4]",
    "-bad.com",
    "bad-.com",
    "a..b.com",
    ".a.com",
    "a.com.",
    "a" * 63 + ".com",
    "a" * 64 + ".com",
    ".".join(["abcdefghi"] * 26) + ".com",
    "x.c0m",
    "x.123",
    "under_score.com",
    "GMAIL.COM",
    "xn--.com",
    "ab--cd.com",
    "ex-ample.museum",
    "a.b",
    "münchen.de",
    "xn--mnchen-3ya.de",
    "\u0301abc.com",
    "e\u0301xample.com",
    "ｅｘａｍｐｌｅ.com",
    "straße.de",
    "ü",
    "中国.中国",
    "bücher.example.com.",
    "xn--bcher-kva.com",
    "a\u200db.com",
    "١٢٣.com",
    "ß" * 60 + ".de",
    "é" * 63 + ".com",
    "Ä.COM",
    "xn--ls8h.la",
    "💩.la",
    "a.xn--p1ai",
    "пример.рф",
]
QUOTED = [
    '"q"',
    '"a b"',
    '"Postmaster"',
    '"a..b"',
    '"a.b"',
    '""',
    '"\\a"',
    '"a\\"b"',
    '"ü.x"',
    '"a@b"',
    '"' + "x" * 70 + '"',
    '"a"."b"',
    '"a"b',
    'a"b"',
    '"\\\\"',
    '"é\u0301"',
    '"x\ty"',
]
DISPLAY = [
    "Some Name",
    '"Bob"',
    '"Smith, John"',
    "José Núñez",
    "Dr. J. Smith",
    "",
    " ",
    "Name;",
    "Smith, John",
    '"a@b.com"',
    "a@b.com",
    "(comment)",
    "Ünïcödé",
    "\u0301x",
    "x\u200dy",
    '"unclosed',
    '"x" y',
    '"a\\"b"',
    '"tab\there"',
    "中文 名字",
    "<x>",
    "Name\t",
    "'Foo Bar, Esq'",
    "A.B",
    "🍇",
]


def random_local(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.55:
        parts = [
            "".join(rng.choices(ATEXT, k=rng.randint(1, 12))) for _ in range(rng.randint(1, 3))
        ]
        return ".".join(parts)
    if kind < 0.65:
        return "x" * rng.choice([1, 63, 64, 65, 70, 120, 200, 245, 250])
    if kind < 0.72:
        return rng.choice(["Postmaster", "ABUSE", "info", "a..b", ".a", "a.", "", "ü", "ñoñó"])
    if kind < 0.82:
        return rng.choice(QUOTED)
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
        roll = rng.random()
        if roll < 0.12:  # a display-name cell
            name = rng.choice(DISPLAY)
            address = (
                f"{name}{rng.choice(['', ' ', '  '])}<{address}>{rng.choice(['', '', ' ', 'x'])}"
            )
        elif roll < 0.13:
            address = "<" + address
        out.append(address)
    return out


def test_fast_path_agrees_with_the_reference_on_a_large_corpus() -> None:
    addresses = corpus(80_000)
    mismatches = []
    valid = display = quoted = long_local = 0
    for address in addresses:
        syntax = check_syntax(address)
        expected = reference_check(address)
        if syntax[:5] != expected[:5] or bool(syntax.error) == syntax.valid:
            mismatches.append((address, syntax, expected))
        if expected.valid:
            valid += 1
            display += "<" in address
            quoted += '"' in address
            long_local += len(expected.local) > 64
    assert mismatches == []
    assert 0.2 * len(addresses) < valid < 0.9 * len(addresses)  # the corpus exercises both sides
    assert min(display, quoted, long_local) > 200  # and the new forms, valid


def test_reference_keeps_the_strict_rules_for_bare_addresses() -> None:
    """Without display names, quotes and long local parts, nothing changed from strict=True."""
    changed = []
    for address in corpus(30_000, seed=6):
        if any(c in address for c in '"<>') or len(address.rpartition("@")[0]) > 64:
            continue
        syntax = reference_check(address)
        if (syntax.valid, syntax.normalized) != strict_library(address):
            changed.append(address)
    assert changed == []


@pytest.mark.parametrize(
    ("address", "normalized"),
    [
        ("Alice@Good-Mail.COM", "Alice@good-mail.com"),
        ("POSTMASTER@example.com", "postmaster@example.com"),
        ("a@xn--exmple-cua.com", "a@exämple.com"),
        ("ü@exämple.com", "ü@exämple.com"),
        ("Some Name <foo@Bar.com>", "foo@bar.com"),
        ('"Bob" <bob@hi.com>', "bob@hi.com"),
        ('"Smith, John" <John.Smith@x.com>', "John.Smith@x.com"),
        ("José Núñez <jose@exämple.com>", "jose@exämple.com"),
        ("Dr. J. Smith<j@x.com>", "j@x.com"),
        ("<a@x.com>", "a@x.com"),
        ("Name🍓With🚴\u200d♀️<test@x.com>", "test@x.com"),
        ('"    "<jh@x.com>', "jh@x.com"),
        ('"a@b.com" <a@b.com>', "a@b.com"),
        ('"test"@iana.org', "test@iana.org"),
        ('"Postmaster"@x.com', "postmaster@x.com"),
        (
            '"unnecessarily.quoted.with.unicode.λ"@example.com',
            "unnecessarily.quoted.with.unicode.λ@example.com",
        ),
        ('Name <"a.b"@x.com>', "a.b@x.com"),
        ("x" * 65 + "@x.com", "x" * 65 + "@x.com"),
        ("x" * 248 + "@x.com", "x" * 248 + "@x.com"),
    ],
)
def test_normalized_form(address: str, normalized: str) -> None:
    assert check_syntax(address).normalized == normalized
    assert reference_check(address).normalized == normalized


def test_a_display_name_cell_describes_the_address_inside() -> None:
    syntax = check_syntax("Ünïcödé Name <Info@XN--exmple-cua.com>")
    assert syntax == Syntax(True, "info@exämple.com", "info", "exämple.com", "xn--exmple-cua.com")
    assert ascii_email(syntax) == "info@xn--exmple-cua.com"
    assert ascii_email(check_syntax('"test"@Iana.org')) == "test@iana.org"


@pytest.mark.parametrize(
    "address",
    [
        "",
        "plain",
        "a@b",
        "a@localhost",
        "a@x.test",
        '"quoted local part"@x.com',
        '"a..b"@x.com',
        '"a@b"@x.com',
        '""@x.com',
        "a@[1.2.3.4]",
        "a..b@x.com",
        "x" * 249 + "@x.com",
        "a b@x.com",
        "a@-x.com",
        "Smith, John <a@x.com>",
        "a@b.com <c@d.com>",
        "Name <a@x.com",
        "Name <a@x.com> x",
        "Name < a@x.com >",
        'Name <"a b"@x.com>',
        "<Name <a@x.com>>",
        "(comment)a@x.com",
        "a@x.com (comment)",
        'obsolete."quoted".atom@x.com',
        "Name\x1f<a@x.com>",
        "Name\u2028 <a@x.com>",
        '"x" y <a@x.com>',
        "<>",
    ],
)
def test_invalid(address: str) -> None:
    for syntax in (check_syntax(address), reference_check(address)):
        assert not syntax.valid and syntax.normalized == "" and syntax.local == "" and syntax.error


def test_plain_addresses_and_names_around_them_never_reach_the_full_library_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mailvet.domain import address as module

    seen: list[str] = []
    real = module.validate_email  # type: ignore[attr-defined]

    def recording(email: str, /, **options: object) -> object:
        seen.append(email)
        return real(email, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "validate_email", recording)
    plain = [
        "Alice@Good-Mail.COM",
        "x" * 70 + "@x.com",
        "Some Name <foo@bar.com>",
        "<a@b.co>",
        "José Núñez <jose@exämple.com>",
        "bad..dots@x.com",
        "a@localhost",
        "ü@x.com",  # Unicode local parts take the library's local-part steps, not its walk
        '"test"@iana.org',  # and quotes around plain ASCII are taken off here
        '"a b"@iana.org',
    ]
    for cell in plain:
        check_syntax(cell)
    assert seen == []
    check_syntax('"a\\"b"@iana.org')  # escapes go to the library
    assert seen == ['"a\\"b"@iana.org']


def random_host(rng: random.Random) -> str:
    """Host names near every rule of the library's domain check: hyphens and digits at label
    ends, "--" (R-LDH, Punycode), label and name lengths around 63 and 253, special-use names."""

    def label() -> str:
        n = rng.choice([1, 2, 3, 5, 10, 61, 62, 63, 64])
        return "".join(rng.choices("abcz019-", weights=[5, 5, 5, 5, 2, 2, 2, 3], k=n))

    labels = [label() for _ in range(rng.choice([1, 2, 2, 3, 4, 5]))]
    roll = rng.random()
    if roll < 0.1:
        labels.append(
            rng.choice(["arpa", "local", "localhost", "onion", "test", "invalid", "home.arpa"])
        )
    elif roll < 0.2:
        labels = ["x" * 63] * 4
        labels[-1] = "y" * rng.choice([57, 58, 59, 60, 61])
    elif roll < 0.3:
        labels[0] = "xn--" + labels[0]
    return ".".join(labels)


def test_the_domain_shortcut_answers_as_the_library() -> None:
    from email_validator.syntax import validate_email_domain_name

    from mailvet.domain.address import _plain_domain

    rng = random.Random(8)
    names = [random_host(rng) for _ in range(30_000)]
    names += [a.rpartition("@")[2].lower() for a in corpus(20_000)]
    names += ["ab.-cd", "a.b", "a.1b", "a.b1", "arpa.com", "x.home.arpa", "ab--cd.com"]
    shortcut = 0
    for name in names:
        if not _plain_domain(name):
            continue
        shortcut += 1
        info = validate_email_domain_name(name, test_environment=False, globally_deliverable=True)
        assert (info["domain"], info["ascii_domain"]) == (name, name), name
    assert shortcut > 5_000
