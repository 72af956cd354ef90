"""The verdict without the network: syntax and the risk lists only.

Every address gets this verdict first; `--checks syntax` stops here, the engine goes on to
DNS and SMTP for the addresses it leaves `not_checked` (or `disposable`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from email_validator.rfc_constants import ATEXT_RE, DOT_ATOM_TEXT, EMAIL_MAX_LENGTH

from mailvet.domain.address import (
    LOWERED_LOCALS,
    NOT_PLAIN,
    Syntax,
    cached_domain,
    check_syntax,
    plain_unicode_domain,
)
from mailvet.domain.risk import clear_caches as clear_risk_caches
from mailvet.domain.risk import domain_risk, is_role, role_spellings, suggest_address
from mailvet.domain.verdict import STATUS_OF, Reason, Verdict

INVALID = Verdict(STATUS_OF[Reason.INVALID_SYNTAX], Reason.INVALID_SYNTAX)


def ascii_email(syntax: Syntax) -> str:
    """The all-ASCII form (A-label domain) when the local part is ASCII, else ""."""
    if not syntax.valid or not syntax.local.isascii():
        return ""
    return f"{syntax.local}@{syntax.ascii_domain}"


def offline_verdict(syntax: Syntax, raw: str = "") -> Verdict:
    """The verdict from syntax and lists alone (no network): risky if disposable or a typo
    domain; an invalid `raw` cell whose typo broke its syntax (`ann@gmail,com`) gets the
    repaired address as its suggestion."""
    if not syntax.valid:
        if raw and "@" in raw:
            suggestion = suggest_address(raw)
            if suggestion:
                return Verdict(INVALID.status, INVALID.reason, suggestion=suggestion)
        return INVALID
    risk = domain_risk(syntax.ascii_domain)
    if risk.suggestion:  # a typo of a popular provider: fix it, do not drop it
        reason = Reason.SUSPECTED_TYPO
    elif risk.disposable:
        reason = Reason.DISPOSABLE
    else:
        reason = Reason.NOT_CHECKED
    return Verdict(
        STATUS_OF[reason],
        reason,
        syntax.normalized,
        f"{syntax.local}@{risk.suggestion}" if risk.suggestion else "",
        risk.disposable,
        is_role(syntax.local),
        risk.free,
        ascii_email=ascii_email(syntax),
    )


def syntax_verdicts(addresses: Sequence[str]) -> list[Verdict]:
    """Verdicts without the network: syntax and lists only."""
    verdicts = []
    for address in addresses:
        cell = address.strip()
        verdicts.append(offline_verdict(check_syntax(cell), cell))
    return verdicts


# ---------------------------------------------------------------- the syntax-only fast path
#
# A syntax-only list is millions of rows of plain addresses (ASCII dot-atom local part, a
# domain the list repeats): everything its verdict says but the local part follows from the
# domain, so it is worked out once per distinct domain string. Any other cell, or any doubt
# (a Unicode local part, a long address, an invalid domain), takes offline_verdict(check_syntax).


class _DomainPart(NamedTuple):
    """What the verdicts of `local@<this domain string>` share, for a valid plain domain."""

    at_domain: str  # "@" + the normalized (Unicode, lower-cased) domain
    at_ascii: str  # "@" + the A-label domain
    status: str
    reason: str
    at_suggestion: str  # "@" + the corrected domain, or ""
    disposable: str
    free: str
    max_local: int  # the longest local part that keeps every form within 254 octets


_DOMAIN_PARTS: dict[str, _DomainPart | None] = {}  # per process; None: the slow way
_DOMAIN_PARTS_MAX = 65536


def _domain_part(domain: str) -> _DomainPart | None:
    """The shared part for plain addresses at `domain` (as written), or None when such an
    address is not plain (check_syntax decides it otherwise) or the domain is invalid."""
    if not domain or NOT_PLAIN.search(domain) is not None:
        return None
    plain_ascii = domain.isascii()
    if not plain_ascii and not plain_unicode_domain(domain):
        return None
    dom = cached_domain(domain.lower() if plain_ascii else domain)
    if dom.error:
        return None
    risk = domain_risk(dom.ascii_domain)
    if risk.suggestion:
        reason = Reason.SUSPECTED_TYPO
    elif risk.disposable:
        reason = Reason.DISPOSABLE
    else:
        reason = Reason.NOT_CHECKED
    at_domain = "@" + dom.domain
    at_ascii = at_domain if dom.ascii_domain == dom.domain else "@" + dom.ascii_domain
    # check_syntax's length rule: the address as written, normalized and with the A-label
    # domain, each at most 254 octets; with an ASCII local part each is len(local) + its @-part
    longest = max(len(form.encode("utf-8")) for form in ("@" + domain, at_domain, at_ascii))
    return _DomainPart(
        at_domain,
        at_ascii,
        STATUS_OF[reason].value,
        reason.value,
        "@" + risk.suggestion if risk.suggestion else "",
        _TRUE_FALSE[risk.disposable],
        _TRUE_FALSE[risk.free],
        EMAIL_MAX_LENGTH - longest,
    )


_TRUE_FALSE = ("false", "true")


def plain_domain(domain: str) -> _DomainPart | None:
    """The shared part of the plain addresses at `domain` (as written; cached per process),
    or None when an address there is not plain. A plain address is `local@domain` with an
    ASCII dot-atom `local` of at most `max_local` characters: its normalized form is
    `local` (lower-cased when in LOWERED_LOCALS) + `at_domain`, exactly as check_syntax
    gives it. What syntax_columns and the cost count (pipeline/cost.py) share."""
    parts = _DOMAIN_PARTS
    try:
        return parts[domain]
    except KeyError:
        if len(parts) >= _DOMAIN_PARTS_MAX:
            parts.clear()
        part = parts[domain] = _domain_part(domain)
        return part


def syntax_columns(addresses: Iterable[str]) -> list[tuple[str, ...]]:
    """`offline_verdict(check_syntax(cell), cell).columns()` of every address (stripped
    first), computed per distinct domain for plain addresses."""
    parts = _DOMAIN_PARTS
    roles = role_spellings()
    insensitive = LOWERED_LOCALS
    dot_atom = DOT_ATOM_TEXT.match
    out: list[tuple[str, ...]] = []
    add = out.append
    for address in addresses:
        cell = address.strip()
        local, _, domain = cell.rpartition("@")
        try:  # plain_domain, inline: a call per row costs here
            part = parts[domain]
        except KeyError:
            part = plain_domain(domain)
        if (
            part is None
            or not local.isascii()
            or len(local) > part.max_local
            or dot_atom(local) is None
        ):
            add(offline_verdict(check_syntax(cell), cell).columns())
            continue
        low = local.lower()
        if low in insensitive:
            local = low
        normalized = local + part.at_domain
        add(
            (
                part.status,
                part.reason,
                normalized,
                local + part.at_suggestion if part.at_suggestion else "",
                part.disposable,
                "true" if low.partition("+")[0] in roles else "false",
                part.free,
                "",  # catch_all: not established without the network
                "",
                "",
                normalized if part.at_ascii is part.at_domain else local + part.at_ascii,
            )
        )
    return out


def never_in_cells(char: str) -> bool:
    """No cell of an offline verdict can hold `char`: an ASCII character that is neither a
    letter, a digit, nor one an address is made of (atext, "." and "@"; domains are letters,
    digits, "-" and "." or non-ASCII). Quoted local parts are refused and unquoted ones hold
    only atext, so a CSV delimiter or quote character for which this holds never needs
    quoting in the mailvet_* cells."""
    return (
        len(char) == 1
        and char.isascii()
        and not char.isalnum()
        and char not in ".@\r\n"
        and ATEXT_RE.match(char) is None
    )


class _TailPart(NamedTuple):
    """The pieces of `sep + sep.join(columns)` that every plain address at a domain shares."""

    head: str  # sep status sep reason sep
    at_domain: str
    at_suggestion: str  # "@" + the corrected domain, or ""
    mid: str  # sep disposable sep (after the suggestion)
    end: str  # sep free sep catch_all sep mx sep smtp_code sep
    at_ascii: str  # is at_domain when the two are equal
    reason: str
    max_local: int


_TAIL_PARTS: dict[str, dict[str, _TailPart | None]] = {}  # per separator, per domain string


def _tail_part(domain: str, sep: str) -> _TailPart | None:
    part = _domain_part(domain)
    if part is None:
        return None
    return _TailPart(
        f"{sep}{part.status}{sep}{part.reason}{sep}",
        part.at_domain,
        part.at_suggestion,
        f"{sep}{part.disposable}{sep}",
        f"{sep}{part.free}{sep}{sep}{sep}{sep}",  # catch_all, mx, smtp_code: empty
        part.at_ascii,
        part.reason,
        part.max_local,
    )


def syntax_tails(
    addresses: Iterable[str], sep: str, starts: str = "", *, misses: Counter[str] | None = None
) -> tuple[list[str], list[str], bool]:
    """(tails, reasons, started): for every address (stripped first) `sep + sep.join(columns)`
    of `offline_verdict(check_syntax(cell), cell).columns()`, and the verdict's reason: the
    text a CSV row gets appended when no cell needs quoting (the caller checks); `started`:
    some cell begins with one of the characters of `starts` (a spreadsheet's formula starts,
    say). Only the cells holding an address can: on the fast path they begin with the local
    part's first character. `misses` (bench/offline_cpu.py --why) counts why cells went the
    slow way, in words."""
    parts = _TAIL_PARTS.setdefault(sep, {})
    roles = role_spellings()
    insensitive = LOWERED_LOCALS
    dot_atom = DOT_ATOM_TEXT.match
    tails: list[str] = []
    reasons: list[str] = []
    add, add_reason = tails.append, reasons.append
    started = False
    for address in addresses:
        # not stripped here: blanks around a cell fail the checks below (the local part is a
        # dot-atom, a domain with a blank has no part) and the slow way strips
        local, _, domain = address.rpartition("@")
        try:
            part = parts[domain]
        except KeyError:
            if len(parts) >= _DOMAIN_PARTS_MAX:
                parts.clear()
            part = parts[domain] = _tail_part(domain, sep)
        # a dot-atom is ASCII: no isascii() needed
        if part is None or len(local) > part[7] or dot_atom(local) is None:
            if misses is not None:
                misses[_miss(address, local, domain, part)] += 1
            cell = address.strip()
            verdict = offline_verdict(check_syntax(cell), cell)
            columns = verdict.columns()
            add(sep + sep.join(columns))
            add_reason(verdict.reason)
            if starts and not started:
                started = any(column[:1] in starts for column in columns if column)
            continue
        if local[0] in starts:  # a dot-atom is not empty
            started = True
        head, at_domain, at_suggestion, mid, end, at_ascii, reason, _ = part
        low = local.lower()
        if low in insensitive:
            local = low
        normalized = local + at_domain
        role = "true" if low.partition("+")[0] in roles else "false"
        ascii_email = normalized if at_ascii is at_domain else local + at_ascii
        if at_suggestion:
            add(f"{head}{normalized}{sep}{local}{at_suggestion}{mid}{role}{end}{ascii_email}")
        else:
            add(f"{head}{normalized}{sep}{mid}{role}{end}{ascii_email}")
        add_reason(reason)
    return tails, reasons, started


def clear_caches() -> None:
    """Empty this process's per-domain caches, as a freshly forked worker has them (for a
    bench; the lists stay loaded)."""
    _DOMAIN_PARTS.clear()
    _TAIL_PARTS.clear()
    cached_domain.cache_clear()
    clear_risk_caches()


def _miss(address: str, local: str, domain: str, part: _TailPart | None) -> str:
    """Why syntax_tails sent `address` the slow way, the first reason that applies."""
    if "@" not in address:
        return "no @-sign"
    if part is None:
        if NOT_PLAIN.search(address):
            return "quotes, brackets or angle brackets"
        if not domain.isascii():
            return "non-ASCII domain, not NFC-plain or invalid"
        if domain != domain.strip():
            return "blank in the domain"
        return "invalid domain"
    if len(local) > part.max_local:
        return "too long"
    if not local.isascii():
        return "non-ASCII local part"
    if not local:
        return "empty local part"
    return "local part not a dot-atom"
