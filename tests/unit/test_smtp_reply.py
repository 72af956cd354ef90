"""SMTP replies: enhanced status code before text; policy refusals are never 'undeliverable'."""

from __future__ import annotations

import pytest

from mailvet.domain.smtp_reply import Outcome, classify_rcpt, parse_reply

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("line", "outcome"),
    [
        ("250 2.1.5 OK", Outcome.ACCEPTED),
        ("251 User not local; will forward", Outcome.ACCEPTED),
        ("550 5.1.1 <x@y.com>: Recipient address rejected: User unknown", Outcome.NOT_FOUND),
        ("550 5.1.6 Mailbox has moved", Outcome.NOT_FOUND),
        ("550 5.1.10 Recipient address rejected: null MX", Outcome.NOT_FOUND),
        ("550 5.2.1 Mailbox disabled", Outcome.DISABLED),
        ("552 5.2.2 Mailbox full", Outcome.FULL),
        ("452 4.2.2 Over quota", Outcome.FULL),
        ("550 5.1.0 Address rejected", Outcome.REJECTED),
        ("550 5.7.1 Client host rejected: blocked using zen.spamhaus.org", Outcome.POLICY),
        ("554 5.7.1 Service unavailable; client host blocked", Outcome.POLICY),
        # enhanced code wins over misleading text
        ("550 5.7.1 User unknown (policy)", Outcome.POLICY),
        ("550 5.1.1 blocked? no: this mailbox does not exist", Outcome.NOT_FOUND),
        ("550 Access denied", Outcome.POLICY),
        ("550 5.4.1 Recipient address rejected: Access denied", Outcome.POLICY),
        ("554 Your IP is blacklisted", Outcome.POLICY),
        ("550 No such user here", Outcome.NOT_FOUND),
        ("550 Mailbox is disabled", Outcome.DISABLED),
        ("552 Requested mail action aborted: exceeded storage allocation", Outcome.FULL),
        ("553 Sorry, that domain isn't in my list", Outcome.REJECTED),
        ("550 Something we have never seen", Outcome.REJECTED),
        ("450 4.2.0 Greylisted, try again later", Outcome.TEMPORARY),
        ("451 4.7.1 Please try again later", Outcome.TEMPORARY),
        ("451 Temporary local problem", Outcome.TEMPORARY),
        ("452 4.5.3 Too many recipients", Outcome.TOO_MANY_RECIPIENTS),
        ("452 Too many recipients received this hour", Outcome.TOO_MANY_RECIPIENTS),
        ("421 4.7.0 Too many connections", Outcome.CLOSING),
        ("500 5.5.2 Syntax error", Outcome.PROTOCOL),
        ("503 Bad sequence of commands", Outcome.PROTOCOL),
        ("252 Cannot VRFY user", Outcome.PROTOCOL),
    ],
)
def test_classify(line: str, outcome: Outcome) -> None:
    code, text = int(line[:3]), line[4:]
    assert classify_rcpt(parse_reply(code, [text])) is outcome


def test_enhanced_code_must_match_the_class_of_the_reply_code() -> None:
    reply = parse_reply(550, ["4.1.1 odd server"])
    assert reply.enhanced == ""
    assert parse_reply(550, ["5.1.1 gone"]).enhanced == "5.1.1"
