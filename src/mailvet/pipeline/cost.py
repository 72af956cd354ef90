"""What a list costs: its distinct, syntactically valid addresses (one credit each).

Intake counts it when the job pays (domain.credits.CreditLedger.charges), before the job is
accepted; the web can count an upload the same way to show the cost before it is sent.
Every email cell is read once (tabular.iter_emails) into a set of the distinct cells; only
those are judged, and only as far as the cost needs (valid? its normalized form?): a plain
address (ASCII dot-atom local part at a domain domain.offline.plain_domain knows, the
shortcut the syntax-only columns take, cached per domain) is decided at once, anything else
by `check_syntax`, the rules the workers use; two spellings
of one address (`Ann@X.com`, `Ann@x.com`) count once, as the result's `mailvet_normalized`
shows them. tests/unit/test_credits_cost.py proves the fast way equal to `check_syntax`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from email_validator.rfc_constants import DOT_ATOM_TEXT

from mailvet.domain.address import LOWERED_LOCALS, check_syntax
from mailvet.domain.credits import job_cost
from mailvet.domain.offline import plain_domain
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
    for cell in cells:
        local, _, domain = cell.rpartition("@")
        part = plain_domain(domain)
        if (
            part is not None
            and local.isascii()
            and len(local) <= part.max_local
            and dot_atom(local) is not None
        ):
            low = local.lower()
            yield (low if low in lowered else local) + part.at_domain
        else:
            syntax = check_syntax(cell)
            if syntax.valid:
                yield syntax.normalized
