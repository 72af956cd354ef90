"""The postmaster control: when a refusal is evidence that the mailbox does not exist."""

from __future__ import annotations

import pytest

from mailvet.domain.evidence import rcpt_outcome
from mailvet.domain.smtp_reply import Outcome, Reply, parse_reply

pytestmark = pytest.mark.unit

ACCEPT = Reply(250, "2.1.5", "OK")
UNKNOWN_USER = parse_reply(550, ["5.1.1 <bob@x.com>: Recipient address rejected: User unknown"])
UNKNOWN_PM = parse_reply(
    550, ["5.1.1 <postmaster@x.com>: Recipient address rejected: User unknown"]
)
REJECTED = parse_reply(550, ["Rejected"])
GREY = parse_reply(450, ["4.2.0 Greylisted, try again later"])


@pytest.mark.parametrize(
    ("reply", "control", "expected"),
    [
        # control accepted: the server tells mailboxes apart, the refusal stands
        (UNKNOWN_USER, ACCEPT, Outcome.NOT_FOUND),
        (REJECTED, ACCEPT, Outcome.REJECTED),
        # the control refused the same way: the server refuses everyone, it is about us
        (UNKNOWN_USER, UNKNOWN_PM, Outcome.POLICY),
        (REJECTED, REJECTED, Outcome.POLICY),
        # no usable control: only mailbox-specific evidence counts
        (UNKNOWN_USER, None, Outcome.NOT_FOUND),
        (UNKNOWN_USER, GREY, Outcome.NOT_FOUND),
        (REJECTED, None, Outcome.POLICY),
        (REJECTED, GREY, Outcome.POLICY),
        (REJECTED, UNKNOWN_PM, Outcome.POLICY),
        (UNKNOWN_USER, REJECTED, Outcome.NOT_FOUND),
        # acceptances and tempfails are not refusals: the control does not matter
        (ACCEPT, UNKNOWN_PM, Outcome.ACCEPTED),
        (GREY, ACCEPT, Outcome.TEMPORARY),
    ],
)
def test_refusal_read_with_the_control(
    reply: Reply, control: Reply | None, expected: Outcome
) -> None:
    assert rcpt_outcome(reply, control) is expected
