"""The password policy of NIST SP 800-63B (5.1.1.2, memorized secrets), as pure rules.

* at least 10 characters, counted as Unicode code points after NFKC normalization (the form
  that is hashed, so "ｐａｓｓ" and "pass" are the same secret on any keyboard);
* at most 1024 bytes in UTF-8: long pass phrases are welcome, but argon2 must not be handed
  megabytes by a hostile form;
* no control characters (NUL, CR, LF, ...): no keyboard types them, and a NUL is where C code
  cuts a string short;
* refused if it is one of the 10,000 most common passwords (domain/data/common-passwords.txt,
  compared case-insensitively) or the account's own address or the part before its @;
* no composition rules (no "one digit, one capital"), no expiry: the standard advises against
  both.

`password_problem` says what is wrong (None: acceptable); `PasswordProblem.message` is the
sentence a form shows. `normalize_password` is what every caller hashes and verifies.
"""

from __future__ import annotations

import enum
import unicodedata
from functools import cache
from importlib.resources import files

MIN_LENGTH = 10
MAX_BYTES = 1024
COMMON_LIST = "common-passwords.txt"


class PasswordProblem(enum.StrEnum):
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    CONTROL_CHARACTER = "control_character"
    COMMON = "common"
    LIKE_EMAIL = "like_email"

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    PasswordProblem.TOO_SHORT: f"Use at least {MIN_LENGTH} characters.",
    PasswordProblem.TOO_LONG: f"Use at most {MAX_BYTES} bytes (a long pass phrase is fine).",
    PasswordProblem.CONTROL_CHARACTER: "The password contains a control character or a broken one.",
    PasswordProblem.COMMON: "This password is one of the most common ones: choose another.",
    PasswordProblem.LIKE_EMAIL: "Do not use your email address as the password.",
}


def normalize_password(password: str) -> str:
    """The form of `password` that is hashed and compared (NFKC, as SP 800-63B suggests)."""
    return unicodedata.normalize("NFKC", password)


def password_problem(password: str, *, email: str = "") -> PasswordProblem | None:
    """What makes `password` unacceptable for the account of `email`; None if nothing."""
    if len(password.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return PasswordProblem.TOO_LONG  # judged before normalizing: bounded work
    normal = normalize_password(password)
    if len(normal.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return PasswordProblem.TOO_LONG
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in normal):  # controls, lone surrogates
        return PasswordProblem.CONTROL_CHARACTER
    if len(normal) < MIN_LENGTH:
        return PasswordProblem.TOO_SHORT
    folded = normal.casefold()
    if folded in common_passwords():
        return PasswordProblem.COMMON
    address = email.strip().casefold()
    if address and folded in {address, address.rpartition("@")[0]}:
        return PasswordProblem.LIKE_EMAIL
    return None


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list, casefolded (read once, on first use)."""
    text = files("mailvet.domain").joinpath("data", COMMON_LIST).read_text(encoding="utf-8")
    return frozenset(
        line.casefold() for line in text.splitlines() if line and not line.startswith("#")
    )
