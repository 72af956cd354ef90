"""SMTP replies to RCPT TO: sender evidence, then policy, then mailbox codes, words, codes.

The table holds replies as they appear on the wire (multi-line replies with their
"550-" continuation prefixes), each tagged with the server software or provider it
imitates. The texts were written for these tests after the shape of the public bounce
examples of each system (Postfix, Exim, sendmail, qmail, Exchange/Office 365, Gmail,
Yahoo/AOL, Outlook.com); none is copied from a library's test suite.
"""

from __future__ import annotations

import pytest

from mailvet.domain.smtp_reply import (
    REASON_OF,
    Outcome,
    Reply,
    classify_rcpt,
    is_mailbox_specific,
    parse_reply,
    refusal_kind,
)
from mailvet.domain.verdict import STATUS_OF, Reason, Status

pytestmark = pytest.mark.unit


def wire(reply: str) -> Reply:
    """Parse a reply as written on the wire: "550-first\\n550 last"."""
    lines = reply.split("\n")
    return parse_reply(int(lines[0][:3]), [line[4:] for line in lines])


A, NF, DIS, FULL = Outcome.ACCEPTED, Outcome.NOT_FOUND, Outcome.DISABLED, Outcome.FULL
REJ, POL, SND = Outcome.REJECTED, Outcome.POLICY, Outcome.SENDER
TMP, TMR, CLO, PRO = (
    Outcome.TEMPORARY,
    Outcome.TOO_MANY_RECIPIENTS,
    Outcome.CLOSING,
    Outcome.PROTOCOL,
)

CASES: list[tuple[str, str, Outcome]] = [
    # -- the cases of the first version of this table (kept, two expectations changed) --
    ("generic", "250 2.1.5 OK", A),
    ("generic", "251 User not local; will forward", A),
    ("postfix", "550 5.1.1 <x@y.com>: Recipient address rejected: User unknown", NF),
    ("generic", "550 5.1.6 Mailbox has moved", NF),
    ("generic", "550 5.1.10 Recipient address rejected: null MX", NF),
    ("generic", "550 5.2.1 Mailbox disabled", DIS),
    ("generic", "552 5.2.2 Mailbox full", FULL),
    ("generic", "452 4.2.2 Over quota", FULL),
    ("generic", "550 5.1.0 Address rejected", REJ),
    ("postfix", "550 5.7.1 Client host rejected: blocked using zen.spamhaus.org", POL),
    ("postfix", "554 5.7.1 Service unavailable; client host blocked", POL),
    ("generic", "550 5.7.1 User unknown (policy)", POL),
    # was NOT_FOUND: policy words now come before mailbox codes, and a refusal that
    # says "blocked" is not evidence enough to delete an address
    ("generic", "550 5.1.1 blocked? no: this mailbox does not exist", POL),
    ("generic", "550 Access denied", POL),
    ("exchange", "550 5.4.1 Recipient address rejected: Access denied", POL),
    ("generic", "554 Your IP is blacklisted", POL),
    ("exim/cpanel", "550 No such user here", NF),
    ("generic", "550 Mailbox is disabled", DIS),
    ("rfc5321", "552 Requested mail action aborted: exceeded storage allocation", FULL),
    # was REJECTED: qmail's rcpthosts refusal is "we do not relay for this domain"
    ("qmail", "553 Sorry, that domain isn't in my list", POL),
    ("generic", "550 Something we have never seen", REJ),
    ("postgrey", "450 4.2.0 Greylisted, try again later", TMP),
    ("generic", "451 4.7.1 Please try again later", TMP),
    ("exim", "451 Temporary local problem", TMP),
    ("postfix", "452 4.5.3 Too many recipients", TMR),
    ("generic", "452 Too many recipients received this hour", TMR),
    ("generic", "421 4.7.0 Too many connections", CLO),
    ("generic", "500 5.5.2 Syntax error", PRO),
    ("generic", "503 Bad sequence of commands", PRO),
    ("generic", "252 Cannot VRFY user", PRO),
    # -- replies about OUR SENDER (issue 6): unknown, never undeliverable --
    ("rfc3463", "501 5.1.7 Bad sender address syntax", SND),
    ("exchange", "550 5.1.8 Access denied, bad outbound sender", SND),
    ("postfix", "450 4.1.8 <verify@x.com>: Sender address rejected: Domain not found", SND),
    ("postfix", "550 5.1.8 <verify@x.com>: Sender address rejected: Domain not found", SND),
    (
        "postfix",
        "550 5.1.0 <verify@x.com>: Sender address rejected: User unknown in local recipient table",
        SND,
    ),
    ("postfix", "554 5.7.1 <verify@x.com>: Sender address rejected: Access denied", SND),
    ("postfix", "504 5.5.2 <verify>: Sender address rejected: need fully-qualified address", SND),
    ("postfix", "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname", SND),
    (
        "postfix",
        "550 5.7.27 <verify@x.com>: Sender address rejected: Domain x.com does not accept mail "
        "(nullMX)",
        SND,
    ),
    (
        "exim",
        (
            "550-Verification failed for <verify@mailvet-test.com>\n"
            "550-Unrouteable address\n"
            "550 Sender verify failed"
        ),
        SND,
    ),
    (
        "exim callout",
        (
            "550-Verification failed for <verify@mailvet-test.com>\n"
            "550-Called:   192.0.2.25\n"
            "550-Sent:     RCPT TO:<verify@mailvet-test.com>\n"
            "550-Response: 550 5.1.1 User unknown\n"
            "550 Sender verify failed"
        ),
        SND,
    ),
    ("exim", "550 Sender verify failed", SND),
    (
        "sendmail",
        "553 5.1.8 <verify@x.com>... Domain of sender address verify@x.com does not exist",
        SND,
    ),
    ("sendmail", "451 4.1.8 Domain of sender address verify@x.com does not resolve", SND),
    ("qmail", "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)", SND),
    ("generic", "550 5.7.1 Null sender is not allowed", SND),
    ("aol", "550 Is not accepting mail from this sender", SND),
    ("sender verification (various)", "550 Sender must exist", SND),
    (
        "sender verification (various)",
        "550 The destination mail system rejected your return address",
        SND,
    ),
    # -- policy refusals with no x.7 code --
    ("postfix", "554 5.7.1 <x@y.com>: Relay access denied", POL),
    ("sendmail", "553 5.0.0 Relaying denied", POL),
    ("sendmail", "550 5.7.1 <x@y.com>... Relaying denied. Proper authentication required.", POL),
    ("exim", "550 Administrative prohibition", POL),
    ("exim", "550 relay not permitted", POL),
    ("exim", "550 Rejected because 192.0.2.1 is listed on SORBS", POL),
    ("exim", "550 5.7.1 Rejected: 192.0.2.1 is listed at zen.spamhaus.org", POL),
    ("generic", "550 blocked", POL),
    ("generic", "554 Your sending IP has a poor reputation", POL),
    ("sendmail", "550 5.0.0 Message rejected by site administrator", POL),
    ("exchange", "550 5.7.1 Unable to relay", POL),
    ("exchange", "550 5.7.606 Access denied, banned sending IP [192.0.2.1]", POL),
    (
        "exchange",
        "550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus",
        POL,
    ),
    ("exchange", "571 Delivery not authorized, message refused", POL),
    ("qmail", "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", POL),
    (
        "yahoo",
        "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, "
        "because the ip is in Spamhaus's list",
        POL,
    ),
    ("yahoo", "554 5.7.9 Message not accepted for policy reasons", POL),
    (
        "gmail",
        (
            "550-5.7.1 [192.0.2.1] The IP you're using to send mail is not authorized to\n"
            "550-5.7.1 send email directly to our servers. Please use the SMTP relay at your\n"
            "550 5.7.1 service provider instead. x1-2.3 - gsmtp"
        ),
        POL,
    ),
    (
        "postfix",
        "550 5.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.1]",
        POL,
    ),
    ("generic", "530 5.7.0 Authentication required", POL),
    ("sender verification (various)", "550 Not sent - no reverse lookup", POL),
    ("mimecast", "550 Administrative prohibition - envelope blocked", POL),
    # RFC 5321's own example text names every cause at once: not mailbox evidence
    (
        "rfc5321",
        (
            "550 Requested action not taken: mailbox unavailable (for example, mailbox not found, "
            "no access, or command rejected for policy reasons)"
        ),
        POL,
    ),
    # a policy line of a multi-line reply counts, wherever the enhanced code is
    (
        "generic",
        "550-Your message was refused\n550-Your IP address is listed on a blocklist\n550 5.1.1 "
        "Goodbye",
        POL,
    ),
    # -- mailbox-specific evidence --
    (
        "postfix",
        "550 5.1.1 <x@y.com>: Recipient address rejected: User unknown in local recipient table",
        NF,
    ),
    (
        "postfix",
        "550 5.1.1 <x@y.com>: Recipient address rejected: User unknown in virtual mailbox table",
        NF,
    ),
    # Postfix's relay_recipient_maps: "relay" here names a table, not a refusal to relay
    (
        "postfix",
        "550 5.1.1 <x@y.com>: Recipient address rejected: User unknown in relay recipient table",
        NF,
    ),
    ("postfix", "551 User not local; please try <x@elsewhere.com>", NF),
    (
        "gmail",
        (
            "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
            "550-5.1.1 double-checking the recipient's email address for typos or\n"
            "550-5.1.1 unnecessary spaces. Learn more at\n"
            "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser x1-2.3 - gsmtp"
        ),
        NF,
    ),
    (
        "gmail",
        (
            "550-5.2.1 The email account that you tried to reach is disabled. Learn more at\n"
            "550 5.2.1  https://support.google.com/mail/?p=DisabledUser x1-2.3 - gsmtp"
        ),
        DIS,
    ),
    (
        "gmail",
        (
            "452-4.2.2 The email account that you tried to reach is over quota. Please direct\n"
            "452 4.2.2 the recipient to https://support.google.com/mail/?p=OverQuotaTemp x1-2.3 - "
            "gsmtp"
        ),
        FULL,
    ),
    (
        "office365",
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        NF,
    ),
    ("exchange", "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found", NF),
    ("exchange", "550 5.1.1 User unknown", NF),
    ("sendmail", "550 5.1.1 <x@y.com>... User unknown", NF),
    ("sendmail", "550 5.2.1 <x@y.com>... Mailbox disabled for this recipient", DIS),
    ("sendmail", "552 5.2.2 <x@y.com>... Mailbox full", FULL),
    ("qmail", "550 sorry, no mailbox here by that name. (#5.1.1)", NF),
    ("vpopmail/chkuser", "511 sorry, no mailbox here by that name (#5.1.1 - chkuser)", NF),
    ("exim", "550 Unrouteable address", NF),
    ("exim", "550 Unknown user", NF),
    (
        "yahoo",
        "554 delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) "
        "[0] - mta1.mail.yahoo.com",
        NF,
    ),
    (
        "yahoo",
        "554 delivery error: dd Sorry your message to x@yahoo.com cannot be delivered. This "
        "mailbox is disabled (554.30)",
        DIS,
    ),
    ("yahoo/aol", "552 1 Requested mail action aborted, mailbox not found", NF),
    ("aol", "550 Mailbox not found", NF),
    (
        "mimecast",
        "550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550 [xyz.us1]",
        NF,
    ),
    (
        "mail.ru",
        "550 Message was not accepted -- invalid mailbox.  Local mailbox x@mail.ru is unavailable: "
        "user not found",
        NF,
    ),
    ("icloud", "550 5.1.1 <x@icloud.com>: user does not exist", NF),
    ("sendmail", "550 5.0.0 <x@y.com>... User unknown", NF),
    (
        "postfix reject_unverified_recipient",
        (
            "550 5.1.1 <x@y.com>: Recipient address rejected: undeliverable address: host mx.y.com"
            "[192.0.2.5] said: 550 5.1.1 User unknown (in reply to RCPT TO command)"
        ),
        NF,
    ),
    ("generic", "550 Requested action not taken: mailbox blocked because user unknown", NF),
    ("generic", "550 Mailbox blocked", DIS),
    ("generic", "550 The user account has been closed", DIS),
    # multi-line replies with the enhanced code only on the last line
    (
        "generic",
        "550-Requested action not taken:\n550-see https://example.com/help\n550 5.1.1 no such user",
        NF,
    ),
    ("generic", "550-Mailbox unavailable\n550 5.2.1 this account is not accepting mail", DIS),
    # -- unrecognised permanent refusals: REJECTED (the lead's postmaster control decides) --
    ("outlook.com", "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302)", REJ),
    ("rfc5321", "550 Requested action not taken: mailbox unavailable", REJ),
    ("postfix", "550 5.1.2 <x@y.com>: Recipient address rejected: Domain not found", REJ),
    (
        "gmail",
        "553-5.1.2 We weren't able to find the recipient domain.\n553 5.1.2 x1-2.3 - gsmtp",
        REJ,
    ),
    ("generic", "554 5.4.4 Unable to route", REJ),
    ("generic", "551 go away", REJ),
    # -- protocol --
    ("generic", "501 5.5.4 Syntax error in parameters or arguments", PRO),
    ("generic", "555 5.5.4 RCPT TO parameters not recognized", PRO),
    # -- temporary --
    ("postfix", "450 4.7.1 Client host rejected: cannot find your hostname, [192.0.2.1]", TMP),
    (
        "postfix",
        "450 4.1.1 <x@y.com>: Recipient address rejected: unverified address: connection timed out",
        TMP,
    ),
    ("yahoo", "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred", CLO),
    ("generic", "354 Start mail input", PRO),
]


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        pytest.param(reply, outcome, id=f"{origin}: {reply[:50]}")
        for origin, reply, outcome in CASES
    ],
)
def test_classify(reply: str, outcome: Outcome) -> None:
    assert classify_rcpt(wire(reply)) is outcome


def test_table_covers_every_outcome() -> None:
    assert {outcome for _, _, outcome in CASES} == set(Outcome)


def test_sender_refusals_are_unknown_smtp_errors() -> None:
    assert REASON_OF[Outcome.SENDER] is Reason.SMTP_ERROR
    assert STATUS_OF[REASON_OF[Outcome.SENDER]] is Status.UNKNOWN
    assert set(REASON_OF) == set(Outcome)


def test_enhanced_code_must_match_the_class_of_the_reply_code() -> None:
    reply = parse_reply(550, ["4.1.1 odd server"])
    assert reply.enhanced == ""
    assert reply.text == "4.1.1 odd server"
    assert parse_reply(550, ["5.1.1 gone"]).enhanced == "5.1.1"


def test_multi_line_reply_keeps_its_lines_and_finds_the_code_on_any_line() -> None:
    reply = parse_reply(
        550, ["Requested action not taken:", " see the help page", "5.1.1 no such user"]
    )
    assert reply.enhanced == "5.1.1"
    assert reply.text == "Requested action not taken:\nsee the help page\nno such user"


def test_first_matching_code_wins_and_every_line_loses_its_code() -> None:
    reply = wire("550-5.7.1 first\n550-4.2.0 odd\n550 5.1.1 last")
    assert reply.enhanced == "5.7.1"
    assert reply.text == "first\n4.2.0 odd\nlast"


def test_ehlo_keywords_survive_parsing() -> None:
    reply = wire("250-mx.example.com Hello\n250-PIPELINING\n250-SIZE 35882577\n250 8BITMIME")
    keywords = [line.split()[0] for line in reply.text.split("\n")[1:]]
    assert keywords == ["PIPELINING", "SIZE", "8BITMIME"]


@pytest.mark.parametrize("local", ["full", "blocked", "disabled", "nobody", "relay", "sender"])
def test_the_recipient_address_in_the_text_does_not_change_the_meaning(local: str) -> None:
    reply = wire(f"550 5.1.0 <{local}@y.com>: Address rejected")
    assert classify_rcpt(reply) is Outcome.REJECTED
    bare = wire(f"550 mail for {local}@y.com refused")
    assert classify_rcpt(bare) is Outcome.REJECTED


def test_mailbox_specific_outcomes() -> None:
    assert {o for o in Outcome if is_mailbox_specific(o)} == {Outcome.NOT_FOUND, Outcome.DISABLED}


def test_same_refusal_to_everyone_gives_the_same_kind_for_postmaster() -> None:
    for template in (
        "550 5.0.0 <{rcpt}>... we do not like you",
        "550 No mail for {rcpt} accepted today",
        "554 5.7.1 <{rcpt}>: Relay access denied",
        "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
        "550-Verification failed for <verify@x.com>\n550 Sender verify failed for {rcpt}",
    ):
        control = wire(template.format(rcpt="postmaster@y.com"))
        for rcpt in ("alice@y.com", "full@y.com", "blocked@y.com", "no.such.user@y.com"):
            assert refusal_kind(wire(template.format(rcpt=rcpt))) == refusal_kind(control), rcpt


def test_different_refusals_give_different_kinds() -> None:
    control = wire("550 5.7.1 <postmaster@y.com>: Relay access denied")
    recipient = wire("550 5.1.1 <alice@y.com>: Recipient address rejected: User unknown")
    assert refusal_kind(control) != refusal_kind(recipient)
    no_code = wire("550 Administrative prohibition")
    unknown = wire("550 No such user here")
    assert refusal_kind(no_code) != refusal_kind(unknown)
    assert refusal_kind(unknown) == (550, "", Outcome.NOT_FOUND)
