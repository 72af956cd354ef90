"""What a list costs: its distinct, syntactically valid addresses (one credit each).

Intake counts it when the job pays (domain.credits.CreditLedger.charges), before the job is
accepted; the web can count an upload the same way to show the cost before it is sent.
Cheap on big lists: every email cell is read once (tabular.iter_emails) into a set of the
distinct cells, and only those are judged, by the offline syntax rules the workers use
(domain.offline.syntax_columns), so a duplicate costs one set lookup; two spellings of one
address (`Ann@X.com`, `ann@x.com`) count once, as the result's `mailvet_normalized` does.
"""

from __future__ import annotations

from pathlib import Path

from mailvet.domain.credits import job_cost
from mailvet.domain.offline import syntax_columns
from mailvet.domain.verdict import Reason
from mailvet.tabular import FileLayout, iter_emails

_INVALID = Reason.INVALID_SYNTAX.value


def unique_valid_addresses(path: Path, layout: FileLayout) -> int:
    """The number of distinct normalized addresses of valid syntax in the email column of
    the list at `path` (blocking: run it in a thread)."""
    cells = set(iter_emails(path, layout))
    cells.discard("")
    return job_cost(columns[2] for columns in syntax_columns(cells) if columns[1] != _INVALID)
