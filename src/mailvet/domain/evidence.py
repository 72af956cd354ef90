"""When a refusal of RCPT TO is evidence that the mailbox does not exist.

A server refuses a recipient for reasons of its own as often as for a missing mailbox: our
IP, our sender, a relay rule. So each session also asks for `postmaster@domain` (RFC 5321
4.5.1: every domain must accept it), the *control*:

- control accepted: the server does tell mailboxes apart; the refusal stands as classified
  (`rejected` for an unrecognised permanent refusal, `mailbox_not_found`/`disabled` for
  mailbox-specific ones);
- control refused with the same kind of refusal: the server refuses everyone the same way,
  so the refusal is about us (policy) and the verdict is unknown;
- no usable control (not asked, tempfailed, refused differently): only mailbox-specific
  evidence (x.1.1, x.1.6, x.1.10, x.2.1 and the "user unknown" family) makes an address
  undeliverable; an unrecognised permanent refusal is not proof, so it is unknown.
"""

from __future__ import annotations

from mailvet.domain.smtp_reply import (
    Outcome,
    Reply,
    classify_rcpt,
    is_mailbox_specific,
    refusal_kind,
)

_REFUSALS = frozenset({Outcome.NOT_FOUND, Outcome.DISABLED, Outcome.REJECTED})


def rcpt_outcome(reply: Reply, control: Reply | None) -> Outcome:
    """The meaning of a RCPT reply, given the postmaster control of the same session."""
    outcome = classify_rcpt(reply)
    if outcome not in _REFUSALS:
        return outcome
    if control is not None:
        control_outcome = classify_rcpt(control)
        if control_outcome is Outcome.ACCEPTED:
            return outcome
        if control_outcome in _REFUSALS and refusal_kind(control) == refusal_kind(reply):
            return Outcome.POLICY
    return outcome if is_mailbox_specific(outcome) else Outcome.POLICY
