"""What an SMTP reply to RCPT TO means.

Evidence is weighed in this order (the first that speaks decides):

1. the reply is about **our sender**, not the recipient (RFC 3463 x.1.7 / x.1.8, "Sender
   address rejected", Exim's "Sender verify failed", a rejected HELO): `SENDER`, unknown;
2. a **policy** refusal (x.7.x, or words such as "relaying denied", "administrative
   prohibition", "listed on Spamhaus", "blocked", "poor reputation"): `POLICY`, unknown;
3. a **mailbox-specific code** (x.1.1, x.1.6, x.1.10 → `NOT_FOUND`, x.2.1 → `DISABLED`,
   x.2.2 → `FULL`);
4. **mailbox words** ("user unknown", "no such user", "mailbox not found", "mailbox is
   disabled", "over quota");
5. the remaining **codes**: an unrecognised permanent refusal is `REJECTED`.

So a customer never deletes a real address because our IP, our HELO name or our MAIL FROM
was refused, and only mailbox-specific evidence says `NOT_FOUND`/`DISABLED`
(`is_mailbox_specific`). Addresses quoted in the text are blanked before any word is
matched, so a recipient such as `full@x` or `blocked@x` cannot change the meaning.
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
    REJECTED = "rejected"  # a permanent refusal that names no reason we recognise
    POLICY = "policy"  # our IP / a relay or policy rule refused: unknown
    SENDER = "sender"  # the refusal is about our MAIL FROM or HELO, not the recipient: unknown
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
    Outcome.SENDER: Reason.SMTP_ERROR,
    Outcome.TEMPORARY: Reason.GREYLISTED,
    Outcome.TOO_MANY_RECIPIENTS: Reason.SMTP_ERROR,
    Outcome.CLOSING: Reason.SMTP_ERROR,
    Outcome.PROTOCOL: Reason.SMTP_ERROR,
}

_MAILBOX_SPECIFIC = frozenset({Outcome.NOT_FOUND, Outcome.DISABLED})


class Reply(NamedTuple):
    code: int
    enhanced: str  # "5.1.1" or ""
    text: str  # the reply's lines (enhanced codes stripped), joined with "\n"


_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
# qmail and friends put the enhanced code at the end: "no mailbox here by that name. (#5.1.1)"
_TRAILING_ENHANCED = re.compile(r"\(#([245])\.(\d{1,3})\.(\d{1,3})\b")
# <anything in angle brackets> and bare local@domain: blanked before words are matched
_ADDRESS = re.compile(r"<[^<>]*>|[^\s<>()\[\]\"',;]+@[^\s<>()\[\]\"',;]+")

_SENDER_WORDS = re.compile(
    r"sender address rejected|sender verif(?:y|ication)\b|verification failed for|"
    r"\bsender(?:'s)? (?:address |domain |mailbox )?(?:is )?"
    r"(?:rejected|refused|denied|invalid|unknown|not (?:allowed|permitted|accepted|valid)|"
    r"must (?:exist|resolve|be)|blocked|does not (?:exist|resolve))|"
    r"\b(?:unknown|invalid|bad|unverified|forged) sender\b|sender (?:domain|mx)\b|"
    r"domain of sender|sender's domain|envelope (?:sender|from)|\bmail from\s*:|"
    r"\b(?:return|reverse)[- ]path|\breturn address|\b(?:null|empty|blank) (?:sender|envelope|return|reverse)|"
    r"badmailfrom|helo command rejected|\b(?:bad|invalid|unknown|forged) (?:helo|ehlo)\b|"
    r"\bhelo (?:name |hostname )?(?:rejected|invalid|not)|(?:from|by) (?:this|the) sender\b",
    re.IGNORECASE,
)
_POLICY_WORDS = re.compile(
    r"block ?list|black ?list|deny ?list|spamhaus|spamcop|sorbs|barracuda|uceprotect|"
    r"\bdnsbl\b|\brbl\b|\bpsbl\b|\blisted (?:on|in|at|by)\b|\bis listed\b|\bblocked\b|"
    r"\bdenied\b|not authori[sz]ed|\bnot (?:allowed|permitted)\b|"
    r"\brelay(?:ing)? (?:access )?(?:denied|not|prohibited|refused)|\b(?:to|not|no) relay(?:ing)?\b|"
    r"administrative(?:ly)? prohibit|\bprohibited\b|site administrator|"
    r"\bpolicy\b|policies|reputation|\bspam\b|unsolicited|banned|"
    r"client host rejected|reverse (?:dns|lookup|hostname)|\bptr\b|authenticat|"
    r"rcpthosts|(?:isn'?t|not) in my list|\bspf\b|\bdmarc\b|rate limit",
    re.IGNORECASE,
)
_MAILBOX_STATE = r"(?:disabled|inactive|deactivated|suspended|locked|closed|blocked|frozen|terminated)"
_MAILBOX_SUBJECT = r"(?:mailbox|account|inbox|user|recipient|addressee)"
# "mailbox blocked" is the mailbox's state, not a policy refusal of us
_MAILBOX_BLOCKED = re.compile(
    r"\b(?:mailbox|account|inbox)\s+(?:(?:is|has|been|was|temporarily|permanently)\s+)*blocked\b",
    re.IGNORECASE,
)
_WORD_GAP = r"(?:\s+[^\s:;,.!?]+){0,6}?"  # up to six words, never across punctuation
_NOT_FOUND_WORDS = re.compile(
    rf"\b(?:user|recipient|mailbox|account|addressee|address|local[- ]part)\s+(?:is\s+)?unknown\b|"
    rf"\b(?:unknown|invalid|non-?existent|nonexisting)\s+(?:user|recipient|mailbox|account|addressee|local[- ]part)|"
    rf"\bno\s+such\s+(?:user|mailbox|recipient|address|account|person|addressee|local user)|"
    rf"\b{_MAILBOX_SUBJECT}{_WORD_GAP}\s+(?:(?:does\s+not|doesn'?t|did\s+not)\s+exist|not\s+found|is\s+invalid|not\s+known)|"
    rf"\bno\s+mailbox\b|\bnot\s+a\s+valid\s+(?:mailbox|user|recipient)|\bunrouteable\s+address|"
    rf"recip(?:ient)?notfound|\bdoesn'?t\s+have\s+an?\s+\S+\s+account|\buser\s+not\s+local\b",
    re.IGNORECASE,
)
_DISABLED_WORDS = re.compile(
    rf"\b{_MAILBOX_SUBJECT}{_WORD_GAP}\s+{_MAILBOX_STATE}\b|\b{_MAILBOX_STATE}\s+{_MAILBOX_SUBJECT}\b",
    re.IGNORECASE,
)
_FULL_WORDS = re.compile(
    r"\bfull\b|quota|exceeded storage|insufficient (?:space|storage)|over ?limit", re.IGNORECASE
)


def parse_reply(code: int, lines: list[str]) -> Reply:
    """Build a Reply from the code and ALL text lines (each without the 3-digit prefix).

    `enhanced` is the first RFC 3463 code that starts a line and whose class matches the
    reply code; every line loses such a leading code, and the lines stay apart ("\\n").
    """
    enhanced = ""
    texts: list[str] = []
    klass = str(code)[:1]
    for line in lines:
        line = line.strip()
        match = _ENHANCED.match(line)
        if match and match.group(1) == klass:
            enhanced = enhanced or match.group(0)
            line = line[match.end() :].strip()
        texts.append(line)
    return Reply(code, enhanced, "\n".join(texts))


def is_mailbox_specific(outcome: Outcome) -> bool:
    """True when the outcome is evidence about this one mailbox (not the server's mood)."""
    return outcome in _MAILBOX_SPECIFIC


def refusal_kind(reply: Reply) -> tuple[int, str, Outcome]:
    """What two refusals must share to be "the same kind": code, enhanced code, outcome.

    The text itself is left out (it embeds the address, a queue id or a timestamp), and
    the outcome is computed with addresses blanked, so a server that says the same thing
    to every recipient gives postmaster and the recipient equal kinds.
    """
    return reply.code, reply.enhanced, classify_rcpt(reply)


def classify_rcpt(reply: Reply) -> Outcome:
    """Classify the reply to RCPT TO (see the module docstring for the order of evidence)."""
    code = reply.code
    if 200 <= code < 300:
        return Outcome.ACCEPTED if code != 252 else Outcome.PROTOCOL
    if code == 421:
        return Outcome.CLOSING
    if not 400 <= code < 600:
        return Outcome.PROTOCOL
    text = " ".join(_ADDRESS.sub(" <> ", reply.text).split())
    subject, detail = _status(code, reply.enhanced, text)
    # 1. about our sender
    if subject == 1 and detail in (7, 8):
        return Outcome.SENDER
    if _SENDER_WORDS.search(text):
        return Outcome.SENDER
    if code < 500:
        return _temporary(code, subject, detail, text)
    # 2. policy
    if subject == 7 or _POLICY_WORDS.search(_MAILBOX_BLOCKED.sub(" ", text)):
        return Outcome.POLICY
    # 3. mailbox-specific codes
    if subject == 1 and detail in (1, 6, 10):  # bad mailbox; moved; RFC 7505 Null MX / O365
        return Outcome.NOT_FOUND
    if subject == 2 and detail == 1:
        return Outcome.DISABLED
    if subject == 2 and detail == 2:
        return Outcome.FULL
    # 4. mailbox words
    if _FULL_WORDS.search(text):
        return Outcome.FULL
    if _NOT_FOUND_WORDS.search(text):
        return Outcome.NOT_FOUND
    if _DISABLED_WORDS.search(text):
        return Outcome.DISABLED
    # 5. the other codes
    if subject in (1, 2):
        return Outcome.REJECTED
    if subject == 5 and detail != 0:  # 5.5.0 is what Outlook.com says for "mailbox unavailable"
        return Outcome.PROTOCOL
    if code in (500, 501, 502, 503, 504, 555):
        return Outcome.PROTOCOL
    if code == 552:
        return Outcome.FULL
    return Outcome.REJECTED


def _status(code: int, enhanced: str, text: str) -> tuple[int, int]:
    """(subject, detail) of the enhanced code, from the start of a line or a qmail tail."""
    if enhanced:
        _, subject, detail = enhanced.split(".")
        return int(subject), int(detail)
    match = _TRAILING_ENHANCED.search(text)
    if match and match.group(1) == str(code)[:1]:
        return int(match.group(2)), int(match.group(3))
    return -1, -1


def _temporary(code: int, subject: int, detail: int, text: str) -> Outcome:
    if subject == 5 and detail == 3:
        return Outcome.TOO_MANY_RECIPIENTS
    if subject == 2 and detail == 2:
        return Outcome.FULL
    if subject == -1 and code == 452:
        if _FULL_WORDS.search(text):
            return Outcome.FULL
        if re.search(r"recipients", text, re.IGNORECASE):
            return Outcome.TOO_MANY_RECIPIENTS
    return Outcome.TEMPORARY
