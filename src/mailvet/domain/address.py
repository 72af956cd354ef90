"""Address syntax: what lists really contain, through python email-validator, with a fast path.

The rules (docs/syntax.md lists them with every deliberate exclusion):

* an address is ``local@domain`` as python email-validator accepts it with
  ``check_deliverability=False`` and ``strict=False``: Unicode local parts and IDNA domains,
  no IP literals, no comments, no obsolete syntax, a globally deliverable domain (at least
  one period, a letter at the end, no special-use names), at most 254 octets in each of the
  forms the library checks (as written without any display name, normalized, IDNA);
* local parts over 64 characters are accepted (RFC 5321 4.5.3.1 makes the limit a
  suggestion and such mailboxes exist; the SMTP probe decides);
* a display-name cell (``Some Name <foo@bar.com>``, ``"Bob" <bob@hi.com>``, ``<a@b.com>``) is
  the address inside: ``normalized``, ``local`` and ``domain`` are those of that address.
  The display name is split off here (the library refuses the periods, non-ASCII letters and
  emoji that real exports hold in unquoted names): a quoted string, or text without RFC 5322
  specials; never control characters.  The address inside is judged by the library;
* a quoted local part whose content is a valid dot-atom (``"test"@iana.org``) is that
  dot-atom; one that needs its quotes (``"a b"@x.com``) is invalid, deliberately.

`reference_check` is the slow statement of these rules through the library; `check_syntax` gives
exactly its verdict (`tests/unit/test_address.py` checks this on a large generated corpus).
Plain addresses take a fast path: the local part is matched with the library's own dot-atom
expression and the domain is validated by the library once per distinct domain string
(cached); lower-case ASCII domains are mostly decided without it (`_lower_ascii_domain`).
Unicode local parts take the library's own local-part steps (cached per local part), plainly
quoted ASCII local parts are unquoted here, and domain literals are refused here.  Everything
else (escapes, other quoted forms, brackets, parentheses, domains that NFC would change) goes
to `reference_check`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import DOT_ATOM_TEXT, EMAIL_MAX_LENGTH
from email_validator.syntax import validate_email_domain_name, validate_email_local_part

try:  # the RFC 2142 names the library lower-cases
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
except ImportError:  # pragma: no cover - older layouts
    from email_validator import CASE_INSENSITIVE_MAILBOX_NAMES  # type: ignore[attr-defined,no-redef]

LOWERED_LOCALS: frozenset[str] = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)  # postmaster, abuse


class Syntax(NamedTuple):
    """The syntax verdict. `normalized`, `local` and `domain` are empty when invalid.

    For a display-name cell they describe the address inside the angle brackets."""

    valid: bool
    normalized: str = ""
    local: str = ""
    domain: str = ""  # Unicode form, lower-cased (what email-validator returns)
    ascii_domain: str = ""  # IDNA (A-label) form, used for DNS and SMTP
    error: str = ""


NEEDS_QUOTES = "The part before the @-sign needs quotes; quoted local parts are not accepted."
BAD_DISPLAY_NAME = "The display name before the angle brackets is not valid."
NO_DOMAIN_LITERAL = "A bracketed IP address after the @-sign is not allowed."

# RFC 5322 3.2.3 specials that an unquoted display name cannot hold (the period is allowed:
# RFC 5322 4.1 obs-phrase), plus the quote and backslash that only a quoted one can.
_PHRASE_SPECIALS = frozenset('()<>[]:;@\\,"')
# Unicode categories a display name may hold: letters, marks, numbers, punctuation, symbols,
# spaces and format characters (emoji joiners); never controls, line breaks or surrogates.
_NAME_CATEGORIES = frozenset(("L", "M", "N", "P", "S", "Zs", "Cf"))


def _name_char(c: str) -> bool:
    category = unicodedata.category(c)
    return category[0] in _NAME_CATEGORIES or category in _NAME_CATEGORIES


def _quoted_name_end(cell: str) -> int:
    """The index just past the quoted string that opens `cell`, or 0 when it is not one."""
    escaped = False
    for i in range(1, len(cell)):
        c = cell[i]
        if not _name_char(c):
            return 0
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            return i + 1
    return 0


def _inside_angle_brackets(cell: str) -> str | None:
    """The address of a display-name cell (`Name <addr>`, `"Name" <addr>`, `<addr>`); the cell
    itself when it is not one; None when it is one whose display name is not valid."""
    if not cell.endswith(">"):
        return cell
    if cell.startswith('"'):
        end = _quoted_name_end(cell)
        rest = cell[end:].lstrip(" ") if end else ""
        if not rest.startswith("<"):
            return cell  # a quoted local part, or a broken cell: the library says which
        return rest[1:-1]
    bracket = cell.find("<")
    if bracket < 0:
        return cell
    name = cell[:bracket]
    if any(c in _PHRASE_SPECIALS or not _name_char(c) for c in name):
        return None
    return cell[bracket + 1 : -1]


def reference_check(address: str) -> Syntax:
    """The rules stated through the library alone (slow; `check_syntax` must equal it).

    Only the display name is split off by hand (the library refuses periods, non-ASCII and
    emoji in unquoted display names, which real exports contain); the address itself is
    always judged by the library."""
    inside = _inside_angle_brackets(address)
    if inside is None:
        return Syntax(False, error=BAD_DISPLAY_NAME)
    try:
        info = validate_email(
            inside,
            check_deliverability=False,
            strict=False,  # local parts over 64 characters exist; the probe decides
            allow_quoted_local=True,  # unquoted below when the quotes were unnecessary
            allow_display_name=False,  # split off above; none may be left inside
            allow_domain_literal=False,
        )
    except EmailNotValidError as exc:
        return Syntax(False, error=str(exc))
    if info.local_part.startswith('"'):  # the library keeps quotes only where they are needed
        return Syntax(False, error=NEEDS_QUOTES)
    if info.ascii_domain is None or info.domain is None:
        # never: only a domain literal leaves these empty, and allow_domain_literal=False
        # refuses those
        raise RuntimeError("email-validator accepted an address without a domain")
    return Syntax(True, info.normalized, info.local_part, info.domain, info.ascii_domain)


_dot_atom = DOT_ATOM_TEXT.match


class _DomainResult(NamedTuple):
    domain: str
    ascii_domain: str
    error: str


# A lower-case ASCII host name the library accepts as it is: letter-digit-hyphen labels of
# at most 63 characters (none with "--": R-LDH and Punycode labels take the long way), at
# least two, the last ending with a letter; at most 253 characters, not special-use.
_PLAIN_DOMAIN = re.compile(
    r"(?=.{1,253}\Z)(?!.*--)"  # the length; no "--" anywhere
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"  # labels, then a last one ending with a letter
    r"(?:[a-z0-9][a-z0-9-]{0,61})?[a-z]\Z"
)
_SPECIAL_USE = tuple(SPECIAL_USE_DOMAIN_NAMES)
_DOTTED_SPECIAL_USE = tuple("." + name for name in SPECIAL_USE_DOMAIN_NAMES)


def _plain_domain(domain: str) -> bool:
    """The library would return `domain` unchanged as both forms (checked without it: the
    library's IDNA walk is its slow part, and every pool process meets thousands of
    domains)."""
    return (
        _PLAIN_DOMAIN.match(domain) is not None
        and domain not in _SPECIAL_USE
        and not domain.endswith(_DOTTED_SPECIAL_USE)
    )


# What the library's first check lets through in an ASCII domain (lower-cased by then).
_HOST_CHARS = re.compile(r"[a-z0-9.-]*\Z")
BAD_DOMAIN = "The part after the @-sign is not a valid domain name."


def _lower_ascii_domain(domain: str) -> bool | None:
    """The library's verdict on a lower-case ASCII domain, told without it where that is
    sure (it maps the name through IDNA, its slow part, before it finds most faults);
    None: ask the library (names with "--": Punycode and R-LDH labels).

    Its first check refuses any character but a letter, digit, "-" or "."; a name of those
    characters must end with a letter (its top-level domain check, or the trailing dot or
    hyphen one); and without "--" such a name is valid exactly when it has _PLAIN_DOMAIN's
    shape (the library's dot, hyphen, label length, period and last-letter checks) and is
    not special-use (its last check)."""
    if _HOST_CHARS.match(domain) is None or not domain[-1:].isalpha():
        return False
    if _PLAIN_DOMAIN.match(domain) is not None:
        return domain not in _SPECIAL_USE and not domain.endswith(_DOTTED_SPECIAL_USE)
    return None if "--" in domain else False


@lru_cache(maxsize=65536)
def cached_domain(domain: str) -> _DomainResult:
    """The library's verdict on a domain (lower-cased if ASCII), cached per distinct string."""
    if domain.isascii() and domain == domain.lower():
        known = _lower_ascii_domain(domain)
        if known is not None:
            return _DomainResult(domain, domain, "") if known else _DomainResult("", "", BAD_DOMAIN)
    try:
        info = validate_email_domain_name(domain, test_environment=False, globally_deliverable=True)
    except EmailNotValidError as exc:
        return _DomainResult("", "", str(exc))
    return _DomainResult(info["domain"], info["ascii_domain"], "")


# Quoted local parts, display names (with or without angle brackets), escapes, domain
# literals and comments are spelled with these characters; without them the library splits
# the address at its first @-sign, exactly as the fast path does.
NOT_PLAIN = re.compile(r'["<>\\\[\]()]')


def plain_unicode_domain(domain: str) -> bool:
    """A Unicode domain the library splits off exactly as we do: NFC-stable, and not starting
    with a combining mark (which would merge with the @-sign)."""
    return (
        bool(domain)
        and unicodedata.combining(domain[0]) == 0
        and unicodedata.is_normalized("NFC", domain)
    )


def check_syntax(address: str) -> Syntax:
    """Validate one cell (already stripped of surrounding blanks); equals `reference_check`."""
    if NOT_PLAIN.search(address) is not None:
        inside = _inside_angle_brackets(address)
        if inside is None:
            return Syntax(False, error=BAD_DISPLAY_NAME)
        if inside == address and address.startswith('"'):
            return _quoted_local_syntax(address)
        if inside == address and address.endswith("]"):
            # `local@[1.2.3.4]`: with no quote, angle bracket or @-sign in the local part the
            # library splits at that @-sign and refuses the domain literal (whatever it
            # holds) unless it refused the local part first
            local, _, domain = address.rpartition("@")
            if domain.startswith("[") and "@" not in local and NOT_PLAIN.search(local) is None:
                return Syntax(False, error=NO_DOMAIN_LITERAL)
        if inside == address or NOT_PLAIN.search(inside) is not None:
            return reference_check(address)  # quotes, escapes, brackets: the library decides
        # a display-name cell around a plain address: `reference_check` judges exactly
        # `inside` (with no display name allowed), so the fast path below may too
        return check_syntax(inside)
    local, at, domain = address.rpartition("@")
    if not at:
        return Syntax(False, error="An email address must have an @-sign.")
    if local.isascii() and (domain.isascii() or plain_unicode_domain(domain)):
        # An ASCII local part must be a dot-atom (of any length: strict=False); the domain
        # must pass the library's domain check (cached per distinct domain string).
        if "@" in local or _dot_atom(local) is None:
            return Syntax(False, error="The part before the @-sign is not valid.")
        if not domain:
            return Syntax(False, error="There must be something after the @-sign.")
        # ASCII domains are case-insensitive: one cache entry (and one library call) per name
        dom = cached_domain(domain.lower() if domain.isascii() else domain)
        if dom.error:
            return Syntax(False, error=dom.error)
        if local.lower() in LOWERED_LOCALS:
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
    if "@" not in local and domain and (domain.isascii() or plain_unicode_domain(domain)):
        return _unicode_local_syntax(address, local, domain)
    return reference_check(address)


def _quoted_local_syntax(address: str) -> Syntax:
    """`"inner"@domain` with an ASCII inner part free of quotes and backslashes, at a domain
    without brackets: the library unquotes it; a dot-atom inside is the address `inner@domain`
    (but for the length as written, two quotes longer), anything else needs its quotes
    (or is refused), so it is invalid. Other quoted forms go to the library."""
    local, _, domain = address.rpartition("@")
    inner = local[1:-1]
    if (
        len(local) < 2
        or not local.endswith('"')
        or not inner.isascii()
        or '"' in inner
        or "\\" in inner
        or NOT_PLAIN.search(domain) is not None
        or not (domain.isascii() or plain_unicode_domain(domain))
    ):
        return reference_check(address)
    if _dot_atom(inner) is None:
        return Syntax(False, error=NEEDS_QUOTES)
    syntax = check_syntax(f"{inner}@{domain}")
    if syntax.valid and len(address.encode("utf-8")) > EMAIL_MAX_LENGTH:
        return Syntax(False, error="The email address is too long.")
    return syntax


@lru_cache(maxsize=16384)
def _library_local(local: str) -> tuple[str, str | None] | None:
    """(local_part, ascii_local_part) as validate_email makes them for an unquoted local
    part (checked, NFC-normalized and checked again, RFC 2142 names lower-cased), or None
    when it refuses it; cached: the library walks a Unicode local part character by
    character."""
    try:
        info = validate_email_local_part(local, allow_smtputf8=True, strict=False)
        normalized = unicodedata.normalize("NFC", local)
        if normalized != local:
            info = validate_email_local_part(normalized, allow_smtputf8=True, strict=False)
    except EmailNotValidError:
        return None
    part, ascii_part = info["local_part"], info["ascii_local_part"]
    if ascii_part is not None and ascii_part.lower() in LOWERED_LOCALS:
        return part.lower(), ascii_part.lower()
    return part, ascii_part


def _unicode_local_syntax(address: str, local: str, domain: str) -> Syntax:
    """A non-ASCII local part without quotes, brackets or a second @-sign, at a domain that
    the library splits off as we do: validate_email's own steps (local part, domain, the
    three lengths) on the parts, each cached, instead of its whole walk on every cell."""
    parts = _library_local(local)
    if parts is None:
        return Syntax(False, error="The part before the @-sign is not valid.")
    dom = cached_domain(domain.lower() if domain.isascii() else domain)
    if dom.error:
        return Syntax(False, error=dom.error)
    part, ascii_part = parts
    normalized = f"{part}@{dom.domain}"
    forms = (address, normalized, f"{ascii_part or part}@{dom.ascii_domain}")
    if any(len(form.encode("utf-8")) > EMAIL_MAX_LENGTH for form in forms):
        return Syntax(False, error="The email address is too long.")
    return Syntax(True, normalized, part, dom.domain, dom.ascii_domain)
