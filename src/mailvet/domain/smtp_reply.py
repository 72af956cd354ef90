"""What an SMTP reply to RCPT TO means: reply code and RFC 3463 enhanced status first, text last.

A policy refusal (x.7.x, blocklisted sender IP, "access denied") says nothing about the
mailbox: it is `unknown`, never `undeliverable`, so a customer never deletes a real address
because our IP was blocked.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from mailvet.domain.verdict import Reason


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    NOT_FOUND = "not_found"
    DISABLED = "disabled"
    FULL = "full"
    REJECTED = "rejected"
    POLICY = "policy"  # our sender/IP refused: unknown
    TEMPORARY = "temporary"  # 4xx: greylisting and friends, retry later
    TOO_MANY_RECIPIENTS = "too_many_recipients"  # 452 4.5.3 / 452 without mailbox meaning
    CLOSING = "closing"  # 421: the server ends the session
    PROTOCOL = "protocol"  # 5.5.x and friends: our conversation, not the mailbox


REASON_OF: dict[Outcome, Reason] = {
    Outcome.ACCEPTED: Reason.ACCEPTED,
    Outcome.NOT_FOUND: Reason.MAILBOX_NOT_FOUND,
    Outcome.DISABLED: Reason.MAILBOX_DISABLED,
    Outcome.FULL: Reason.MAILBOX_FULL,
    Outcome.REJECTED: Reason.REJECTED,
    Outcome.POLICY: Reason.SMTP_ERROR,
    Outcome.TEMPORARY: Reason.GREYLISTED,
    Outcome.TOO_MANY_RECIPIENTS: Reason.SMTP_ERROR,
    Outcome.CLOSING: Reason.SMTP_ERROR,
    Outcome.PROTOCOL: Reason.SMTP_ERROR,
}


class Reply(NamedTuple):
    code: int
    enhanced: str  # "5.1.1" or ""
    text: str


_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")

_POLICY_WORDS = re.compile(
    r"block|black ?list|spamhaus|spamcop|barracuda|\bdnsbl\b|\brbl\b|access denied|"
    r"not allowed to relay|relay (?:access )?denied|policy|reputation|\bspam\b|banned|"
    r"client host rejected|sender address rejected|authenticat",
    re.I,
)
_NOT_FOUND_WORDS = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address)|does not exist|"
    r"doesn'?t exist|not found|unknown recipient|invalid recipient|recipient unknown|"
    r"mailbox unavailable|no mailbox|not a valid mailbox|address unknown|unrouteable|"
    r"invalid mailbox|undeliverable address",
    re.I,
)
_DISABLED_WORDS = re.compile(r"disabled|inactive|deactivated|suspended|locked|closed", re.I)
_FULL_WORDS = re.compile(r"\bfull\b|quota|storage|insufficient space|over ?limit", re.I)


def parse_reply(code: int, lines: list[str]) -> Reply:
    """Build a Reply from the code and text lines (without the 3-digit prefix)."""
    text = " ".join(line.strip() for line in lines).strip()
    match = _ENHANCED.match(text)
    enhanced = ""
    if match and match.group(1) == str(code)[0]:
        enhanced = match.group(0)
        text = text[match.end() :].strip()
    return Reply(code, enhanced, text)


def classify_rcpt(reply: Reply) -> Outcome:
    """Classify the reply to RCPT TO."""
    code = reply.code
    if 200 <= code < 300:
        return Outcome.ACCEPTED if code != 252 else Outcome.PROTOCOL
    if code == 421:
        return Outcome.CLOSING
    if reply.enhanced:
        _, subject, detail = reply.enhanced.split(".")
        outcome = _by_enhanced(code, int(subject), int(detail))
        if outcome is not None:
            return outcome
    return _by_code_and_text(code, reply.text)


def _by_enhanced(code: int, subject: int, detail: int) -> Outcome | None:
    if subject == 7:
        return Outcome.TEMPORARY if code < 500 else Outcome.POLICY
    if code < 500:
        if subject == 5 and detail == 3:
            return Outcome.TOO_MANY_RECIPIENTS
        if subject == 2 and detail == 2:
            return Outcome.FULL
        return Outcome.TEMPORARY
    if subject == 1:
        if detail in (1, 6):  # bad destination mailbox; mailbox has moved
            return Outcome.NOT_FOUND
        if detail == 10:  # RFC 7505: recipient domain publishes Null MX
            return Outcome.NOT_FOUND
        return Outcome.REJECTED
    if subject == 2:
        if detail == 1:
            return Outcome.DISABLED
        if detail == 2:
            return Outcome.FULL
        return Outcome.REJECTED
    if subject == 5:
        return Outcome.PROTOCOL
    if subject in (3, 4):
        return None  # mail system / routing: decide by code and text
    return None


def _by_code_and_text(code: int, text: str) -> Outcome:
    if code < 500:
        if code == 452 and _FULL_WORDS.search(text):
            return Outcome.FULL
        if code == 452 and re.search(r"recipients", text, re.I):
            return Outcome.TOO_MANY_RECIPIENTS
        return Outcome.TEMPORARY
    if _POLICY_WORDS.search(text):
        return Outcome.POLICY
    if code in (500, 501, 502, 503, 504):
        return Outcome.PROTOCOL
    if code == 552 or _FULL_WORDS.search(text):
        return Outcome.FULL
    if _DISABLED_WORDS.search(text):
        return Outcome.DISABLED
    if _NOT_FOUND_WORDS.search(text) or code == 551:
        return Outcome.NOT_FOUND
    if code in (550, 553, 554):
        return Outcome.REJECTED
    return Outcome.PROTOCOL
