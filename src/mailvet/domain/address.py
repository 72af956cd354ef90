"""Address syntax: RFC 5321/5322/6531 through python email-validator, with a proven fast path.

`check_syntax` gives exactly the verdict of::

    email_validator.validate_email(addr, check_deliverability=False, strict=True)

(valid or not, and the same normalized form).  Plain ASCII addresses take a fast path:
the local part is matched with the library's own dot-atom expression and the domain is
validated by the library once per distinct domain string (cached).  Everything else
(quoted local parts, Unicode, IDNA, display names, odd characters) goes to the library.
`tests/unit/test_address.py` checks the equivalence on a large generated corpus.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import (
    DOT_ATOM_TEXT,
    EMAIL_MAX_LENGTH,
    LOCAL_PART_MAX_LENGTH,
)
from email_validator.syntax import validate_email_domain_name

try:  # the RFC 2142 names the library lower-cases
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
except ImportError:  # pragma: no cover - older layouts
    from email_validator import CASE_INSENSITIVE_MAILBOX_NAMES  # type: ignore[attr-defined,no-redef]


class Syntax(NamedTuple):
    """The syntax verdict. `normalized`, `local` and `domain` are empty when invalid."""

    valid: bool
    normalized: str = ""
    local: str = ""
    domain: str = ""  # Unicode form, lower-cased (what email-validator returns)
    ascii_domain: str = ""  # IDNA (A-label) form, used for DNS and SMTP
    error: str = ""


_dot_atom = DOT_ATOM_TEXT.match


class _DomainResult(NamedTuple):
    domain: str
    ascii_domain: str
    error: str


@lru_cache(maxsize=65536)
def _domain(domain: str) -> _DomainResult:
    try:
        info = validate_email_domain_name(domain, test_environment=False, globally_deliverable=True)
    except EmailNotValidError as exc:
        return _DomainResult("", "", str(exc))
    return _DomainResult(info["domain"], info["ascii_domain"], "")


def _library(address: str) -> Syntax:
    try:
        info = validate_email(address, check_deliverability=False, strict=True)
    except EmailNotValidError as exc:
        return Syntax(False, error=str(exc))
    if info.ascii_domain is None or info.domain is None:  # domain literals are refused earlier
        return Syntax(False, error="no domain")
    return Syntax(True, info.normalized, info.local_part, info.domain, info.ascii_domain)


# Quoted local parts, display names and domain literals are refused by the options we use
# (allow_quoted_local, allow_display_name, allow_domain_literal all False), and these
# characters can appear in a valid address only through those forms.
_NEVER_VALID = re.compile(r'["<>\\\[\]()]')


def _plain_unicode(domain: str) -> bool:
    """A Unicode domain the library splits off exactly as we do: NFC-stable, and not starting
    with a combining mark (which would merge with the @-sign)."""
    return (
        bool(domain)
        and unicodedata.combining(domain[0]) == 0
        and unicodedata.is_normalized("NFC", domain)
    )


def check_syntax(address: str) -> Syntax:
    """Validate one address (already stripped of surrounding blanks)."""
    local, at, domain = address.rpartition("@")
    if not at:
        return Syntax(False, error="An email address must have an @-sign.")
    if _NEVER_VALID.search(address) is not None:
        return Syntax(False, error="Quoting, display names and IP-address domains are not allowed.")
    if local.isascii() and (domain.isascii() or _plain_unicode(domain)):
        # An ASCII local part must be a dot-atom of at most 64 characters (strict); the
        # domain must pass the library's domain check (cached per distinct domain string).
        if "@" in local or len(local) > LOCAL_PART_MAX_LENGTH or _dot_atom(local) is None:
            return Syntax(False, error="The part before the @-sign is not valid.")
        if not domain:
            return Syntax(False, error="There must be something after the @-sign.")
        # ASCII domains are case-insensitive: one cache entry (and one library call) per name
        dom = _domain(domain.lower() if domain.isascii() else domain)
        if dom.error:
            return Syntax(False, error=dom.error)
        if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
            local = local.lower()
        normalized = f"{local}@{dom.domain}"
        if domain.isascii() and dom.domain == dom.ascii_domain:
            too_long = len(address) > EMAIL_MAX_LENGTH  # all three forms have this length
        else:  # the library's three checks: as given, normalized, with the IDNA domain
            forms = (address, normalized, f"{local}@{dom.ascii_domain}")
            too_long = any(len(form.encode("utf-8")) > EMAIL_MAX_LENGTH for form in forms)
        if too_long:
            return Syntax(False, error="The email address is too long.")
        return Syntax(True, normalized, local, dom.domain, dom.ascii_domain)
    return _library(address)
