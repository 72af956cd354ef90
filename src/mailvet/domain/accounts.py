"""Accounts as pure rules: the `Account` other areas see, and every timing rule of signing in.

* addresses: `normalize_email` is the one form stored and looked up (stripped, casefolded,
  one plain ASCII address; Unicode is refused so that look-alike letters and case folding
  can never make two mailboxes one account, see its docstring);
* the 6-digit code mailed at sign-up: valid 15 minutes, voided by the 5th wrong entry, resent
  at most 5 times (6 mails in all) and at least 60 s apart; a fresh allowance after a quiet
  day (`judge_code`, `judge_resend`);
* TOTP (RFC 6238, 30 s steps, one step of clock drift either way): a step once used, or any
  earlier one, is never accepted again (`totp_step`, `replayed`);
* recovery codes: 10 of them, 12 letters and digits without look-alikes, shown as
  `abcd-efgh-jkmn`, matched whatever the case, spaces or dashes (`new_recovery_codes`,
  `normalize_recovery_code`);
* password-reset links live 1 hour (`RESET_LIFETIME`, the issue allows at most 24 h).

(A sensitive change needs the password again when the sign-in is over 10 minutes old: that
rule is web/sessions.py's `REAUTH_WITHIN` / `recently_authenticated`, the one place it lives.)

Times are aware UTC datetimes passed in by the caller; nothing here reads the clock.
"""

from __future__ import annotations

import datetime
import enum
import math
import secrets

import msgspec
import pyotp
import pyotp.utils

from mailvet.domain.address import check_syntax

# --- the account ---------------------------------------------------------------------------


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """An account as every area sees it (no secrets: no hash, no TOTP secret)."""

    id: str  # uuid4 hex
    email: str  # normalized (normalize_email)
    first_name: str = ""
    last_name: str = ""
    newsletter: bool = False
    role: Role = Role.USER
    confirmed: bool = False  # may validate only once confirmed
    disabled: bool = False  # may not sign in
    totp_enabled: bool = False
    google_sub: str | None = None
    google_picture: str | None = None
    avatar_key: str | None = None
    has_password: bool = True  # False: signs in with Google only
    created_at: datetime.datetime

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


# --- addresses ------------------------------------------------------------------------------

MAX_EMAIL_LENGTH = 254  # RFC 5321's path limit, less the angle brackets
MAX_NAME_LENGTH = 200


class InvalidEmail(ValueError):
    """The text is not one plain address an account can have (the message says why)."""


def normalize_email(raw: str) -> str:
    """The stored form of an account's address: stripped and casefolded.

    Only plain ASCII addresses (`local@domain.tld`, syntax as mailvet judges lists): no display
    name, no quotes, no Unicode. Unicode would let look-alikes (Cyrillic "а" for Latin "a",
    fullwidth letters) and casefolding ("ß" -> "ss") turn one mailbox into another's account,
    and Google sign-in links accounts by address. Raises InvalidEmail."""
    text = raw.strip()
    if not text:
        raise InvalidEmail("Enter your email address.")
    if len(text) > MAX_EMAIL_LENGTH:
        raise InvalidEmail("This email address is too long.")
    if not text.isascii() or not text.isprintable():
        raise InvalidEmail("Use the plain ASCII form of your email address.")
    if any(c in text for c in ' <>"(),;:[]\\'):
        raise InvalidEmail("Enter only the address, like name@example.com.")
    syntax = check_syntax(text)
    if not syntax.valid:
        raise InvalidEmail(syntax.error or "This is not a valid email address.")
    return text.casefold()


def clean_name(raw: str) -> str:
    """A first or last name as stored: stripped, control characters dropped, at most 200
    characters (escaping is the templates' job; this only keeps the row sane)."""
    kept = "".join(c for c in raw if c.isprintable() or c == " ")
    return kept.strip()[:MAX_NAME_LENGTH]


# --- the e-mailed code ----------------------------------------------------------------------

CODE_DIGITS = 6
CODE_LIFETIME = datetime.timedelta(minutes=15)
CODE_MAX_WRONG = 5
CODE_MAX_RESENDS = 5
CODE_RESEND_INTERVAL = datetime.timedelta(seconds=60)
CODE_SENDS_RESET = datetime.timedelta(days=1)  # a quiet day gives a fresh allowance


def new_code() -> str:
    """Six random digits (leading zeros kept)."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def clean_code(raw: str) -> str | None:
    """The six digits typed (spaces and dashes ignored), or None if it is not six digits."""
    digits = raw.strip().replace(" ", "").replace("-", "")
    if len(digits) != CODE_DIGITS or not (digits.isascii() and digits.isdigit()):
        return None
    return digits


class CodeState(msgspec.Struct, frozen=True, kw_only=True):
    expires_at: datetime.datetime
    attempts: int  # wrong entries so far
    sends: int  # mails sent, the first one included
    last_sent_at: datetime.datetime


class CodeOutcome(enum.StrEnum):
    ACCEPTED = "accepted"
    WRONG = "wrong"  # counted; `attempts_left` more tries
    VOIDED = "voided"  # too many wrong entries: ask for a new code
    EXPIRED = "expired"  # ask for a new code


class CodeVerdict(msgspec.Struct, frozen=True):
    outcome: CodeOutcome
    attempts_left: int


def judge_code(state: CodeState, *, matches: bool, now: datetime.datetime) -> CodeVerdict:
    """What an entry does. A voided code stays voided even when the right digits come."""
    left = CODE_MAX_WRONG - state.attempts
    if left <= 0:
        return CodeVerdict(CodeOutcome.VOIDED, 0)
    if now >= state.expires_at:
        return CodeVerdict(CodeOutcome.EXPIRED, left)
    if matches:
        return CodeVerdict(CodeOutcome.ACCEPTED, left)
    left -= 1
    return CodeVerdict(CodeOutcome.WRONG if left else CodeOutcome.VOIDED, left)


class ResendVerdict(msgspec.Struct, frozen=True):
    allowed: bool
    retry_after: int = 0  # seconds until a resend is allowed again
    sends: int = 0  # the sends count to store when allowed (this mail included)
    # refused because the allowance is spent (not merely too soon): it renews
    # CODE_SENDS_RESET after the last mail, `retry_after` from now
    spent: bool = False


def judge_resend(state: CodeState | None, *, now: datetime.datetime) -> ResendVerdict:
    """May another code be mailed now? (None: no code yet, so yes.) Never refused for good:
    an account whose resends are spent and whose code has expired or been voided gets a
    fresh allowance CODE_SENDS_RESET after its last mail (refusals move nothing), so a
    person is kept waiting at most a day, and told how long (`retry_after`)."""
    if state is None or now - state.last_sent_at >= CODE_SENDS_RESET:
        return ResendVerdict(True, sends=1)
    wait = state.last_sent_at + CODE_RESEND_INTERVAL - now
    if wait > datetime.timedelta(0):
        return ResendVerdict(False, retry_after=math.ceil(wait.total_seconds()))
    if state.sends > CODE_MAX_RESENDS:  # the first mail and 5 resends are gone
        fresh = state.last_sent_at + CODE_SENDS_RESET - now
        return ResendVerdict(False, retry_after=math.ceil(fresh.total_seconds()), spent=True)
    return ResendVerdict(True, sends=state.sends + 1)


# --- TOTP -----------------------------------------------------------------------------------

TOTP_DRIFT_STEPS = 1  # the code of the step before or after `now` is accepted too
TOTP_ISSUER = "mailvet"


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def totp_step(secret: str, code: str, *, now: datetime.datetime) -> int | None:
    """The time step whose code `code` is (within the drift), or None. Typed as the mailed
    code is (`clean_code`: spaces and dashes ignored)."""
    digits = clean_code(code)
    if digits is None:
        return None
    totp = pyotp.TOTP(secret)
    base = totp.timecode(now)
    for step in range(base - TOTP_DRIFT_STEPS, base + TOTP_DRIFT_STEPS + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(step), digits):
            return step
    return None


def replayed(step: int, last_step: int | None) -> bool:
    """A step at or before the last accepted one is a replay (its code was seen already, or a
    newer one was used: an older code can no longer be fresh)."""
    return last_step is not None and step <= last_step


# --- recovery codes -------------------------------------------------------------------------

RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i look-alikes
RECOVERY_LENGTH = 12  # 12 * log2(31) ~ 59 bits


def new_recovery_codes() -> list[str]:
    """Ten fresh codes as shown to the user (`abcd-efgh-jkmn`), all different."""
    codes: set[str] = set()
    while len(codes) < RECOVERY_CODES:
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        codes.add("-".join(raw[i : i + 4] for i in range(0, RECOVERY_LENGTH, 4)))
    return sorted(codes)


def normalize_recovery_code(raw: str) -> str | None:
    """The 12 characters of a typed recovery code (case, spaces, dashes ignored), or None."""
    text = raw.strip().lower().replace("-", "").replace(" ", "")
    if len(text) != RECOVERY_LENGTH or any(c not in RECOVERY_ALPHABET for c in text):
        return None
    return text


# --- resets -------------------------------------------------------------

RESET_LIFETIME = datetime.timedelta(hours=1)


def reset_usable(
    *, expires_at: datetime.datetime, used_at: datetime.datetime | None, now: datetime.datetime
) -> bool:
    return used_at is None and now < expires_at
