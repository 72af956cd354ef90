"""What a list costs: its distinct, syntactically valid addresses (one credit each).

Intake counts it when the job pays (domain.credits.CreditLedger.charges), before the job is
accepted; the web can count an upload the same way to show the cost before it is sent.
Every email cell is read once (tabular.iter_emails) into a set of the distinct cells; only
those are judged, and only as far as the cost needs (valid? its normalized form?): a plain
address (ASCII dot-atom local part, ASCII domain the library accepts, cached per domain)
is decided here, anything else by `check_syntax`, the rules the workers use; two spellings
of one address (`Ann@X.com`, `Ann@x.com`) count once, as the result's `mailvet_normalized`
shows them. tests/unit/test_credits_cost.py proves the fast way equal to `check_syntax`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from email_validator.rfc_constants import DOT_ATOM_TEXT, EMAIL_MAX_LENGTH

from mailvet.domain.address import LOWERED_LOCALS, cached_domain, check_syntax
from mailvet.domain.credits import job_cost
from mailvet.tabular import FileLayout, iter_emails


def unique_valid_addresses(path: Path, layout: FileLayout) -> int:
    """The number of distinct normalized addresses of valid syntax in the email column of
    the list at `path` (blocking: run it in a thread)."""
    cells = set(iter_emails(path, layout))
    cells.discard("")
    return job_cost(normalized_valid(cells))


def normalized_valid(cells: Iterable[str]) -> Iterator[str]:
    """The normalized form of each valid address among `cells` (stripped cells), as
    `check_syntax` gives it; invalid cells give nothing."""
    dot_atom = DOT_ATOM_TEXT.match
    lowered = LOWERED_LOCALS
    domains: dict[str, str | None] = {}  # domain as written -> "@domain" normalized, or None
    for cell in cells:
        local, _, domain = cell.rpartition("@")
        try:
            at_domain = domains[domain]
        except KeyError:
            at_domain = domains[domain] = _plain_domain(domain)
        if (
            at_domain is not None
            and local
            and local.isascii()
            and dot_atom(local) is not None
            and len(cell) <= EMAIL_MAX_LENGTH
        ):
            low = local.lower()
            yield (low if low in lowered else local) + at_domain
        else:
            syntax = check_syntax(cell)
            if syntax.valid:
                yield syntax.normalized


def _plain_domain(domain: str) -> str | None:
    """ "@" + the normalized form of an ASCII domain the library accepts whose IDNA form is
    itself; None for anything else (the full check decides those)."""
    if not domain or not domain.isascii():
        return None
    checked = cached_domain(domain.lower())
    if checked.error or checked.domain != checked.ascii_domain:
        return None
    return "@" + checked.domain
