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


_PLAIN_ASCII_DOMAIN = re.compile(r"[A-Za-z0-9.\-]+\Z")
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


_NEEDS_LIBRARY_TO_REJECT = re.compile(r'["<>\\\[\]()]')


def check_syntax(address: str) -> Syntax:
    """Validate one address (already stripped of surrounding blanks)."""
    local, at, domain = address.rpartition("@")
    if not at:
        return Syntax(False, error="An email address must have an @-sign.")
    if (
        at
        and len(local) <= LOCAL_PART_MAX_LENGTH
        and address.isascii()
        and "@" not in local
        and _dot_atom(local) is not None
        and _PLAIN_ASCII_DOMAIN.match(domain) is not None
    ):
        dom = _domain(domain)
        if dom.error:
            return Syntax(False, error=dom.error)
        if dom.domain == dom.ascii_domain:  # no IDNA: every length form is the same
            if len(local) + 1 + len(dom.domain) > EMAIL_MAX_LENGTH:
                return Syntax(False, error="The email address is too long.")
            if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
                local = local.lower()
            return Syntax(True, f"{local}@{dom.domain}", local, dom.domain, dom.ascii_domain)
    elif (
        at
        and address.isascii()
        and "@" not in local
        and _dot_atom(local) is None
        and _NEEDS_LIBRARY_TO_REJECT.search(address) is None
    ):
        # a plain ASCII local part that is not a dot-atom (empty, "..", leading or trailing
        # dot, space, comma...) and no quoting or display-name syntax anywhere: invalid
        return Syntax(False, error="The part before the @-sign is not valid.")
    return _library(address)
