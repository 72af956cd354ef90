"""The verdict without the network: syntax and the risk lists only.

Every address gets this verdict first; `--checks syntax` stops here, the engine goes on to
DNS and SMTP for the addresses it leaves `not_checked` (or `disposable`).
"""

from __future__ import annotations

from collections.abc import Sequence

from mailvet.domain.address import Syntax, check_syntax
from mailvet.domain.risk import domain_risk, is_role, suggest_address
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
