"""API keys as pure rules: the key's text, its digest, its scopes, its expiry and whether it
may be used now.

* A key reads `mv_<KEY_ID>_<SECRET>`: `KEY_ID` is 16 letters and digits (about 95 bits, the
  key's public id: it is the table's primary key, shown on the keys page and in logs), and
  `SECRET` 43 letters and digits (about 256 bits). Letters and digits only, so `_` separates
  the parts unambiguously and a double click selects the whole key.
* `parse_key` reads what a client sent; anything else (wrong prefix, a part missing or of the
  wrong length, a character outside the alphabet, non-ASCII, megabytes) is `None`, never an
  exception: the caller answers "invalid".
* Only `secret_digest(key_id, secret)` is stored. Plain SHA-256 is enough here, unlike for a
  password: the secret is 256 random bits, so no dictionary or brute force can invert its
  digest, and a slow hash (bcrypt, argon2) would only cost every API request its time (the
  original checked bcrypt per request). No key of the application is mixed in on purpose:
  the CLI and the web make and check keys alike without the web's secret key, and changing
  that key does not void every API key. The key id is hashed with the secret, so a digest
  cannot be moved to another key's row. `secret_matches` compares with
  `hmac.compare_digest` (constant time).
* Scopes: `validate`, `jobs:read`, `jobs:write`; a key made without any has all of them.
* Expiry: `parse_expiry("2027-01-31")` is the end of that day, UTC (23:59:59); an ISO time
  is taken as given (UTC when it has no offset). A time in the past is accepted: the key is
  then made expired.
* `refusal(...)` decides, in this order: a secret that does not match ("invalid": nothing
  about the key is told to whoever lacks its secret), "revoked", "expired", "disabled
  account"; None means the key may be used.
* `last_used_at` is written at most once a minute (`touch_due`), not once per request.

Times are aware UTC datetimes passed in by the caller; nothing here reads the clock.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Iterable

import msgspec

PREFIX = "mv"
KEY_ID_LENGTH = 16
SECRET_LENGTH = 43  # 43 base-62 characters: 256 bits
ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = len(PREFIX) + 1 + KEY_ID_LENGTH + 1 + SECRET_LENGTH
DIGEST_LENGTH = 64  # hex SHA-256
LABEL_MAX = 100
TOUCH_EVERY = datetime.timedelta(minutes=1)

_KEY = re.compile(rf"{PREFIX}_([A-Za-z0-9]{{{KEY_ID_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})")
_KEY_ID = re.compile(rf"[A-Za-z0-9]{{{KEY_ID_LENGTH}}}")
_DIGEST_PURPOSE = b"mailvet api key\x00"


class Scope(enum.StrEnum):
    VALIDATE = "validate"
    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)


class Refusal(enum.StrEnum):
    """Why a request's key is not accepted."""

    MISSING = "missing"
    INVALID = "invalid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    DISABLED_ACCOUNT = "disabled account"


class InvalidApiKeyInput(ValueError):
    """A label, scope or expiry that a key cannot be made with; the message is for people."""


class ParsedKey(msgspec.Struct, frozen=True):
    key_id: str
    secret: str


class NewKey(msgspec.Struct, frozen=True):
    """A key just made: `text` is shown once, only `digest` is kept."""

    key_id: str
    text: str
    digest: str


class ApiPrincipal(msgspec.Struct, frozen=True):
    """Who an accepted key speaks for."""

    account_id: str
    key_id: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


class KeyState(msgspec.Struct, frozen=True):
    """What `refusal` needs of a stored key."""

    key_id: str
    secret_digest: str
    expires_at: datetime.datetime | None
    revoked_at: datetime.datetime | None


# --- the key's text ------------------------------------------------------------------------------


def new_key() -> NewKey:
    """A fresh key from the system's CSPRNG (`secrets`)."""
    key_id = "".join(secrets.choice(ALPHABET) for _ in range(KEY_ID_LENGTH))
    secret = "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
    return NewKey(
        key_id=key_id,
        text=f"{PREFIX}_{key_id}_{secret}",
        digest=secret_digest(key_id, secret),
    )


def parse_key(text: object) -> ParsedKey | None:
    """The parts of a key as a client sent it (surrounding spaces dropped), or None for
    anything that is not one."""
    if not isinstance(text, str) or len(text) > KEY_LENGTH + 64:
        return None
    candidate = text.strip()
    if len(candidate) != KEY_LENGTH or not candidate.isascii():
        return None
    found = _KEY.fullmatch(candidate)
    if found is None:
        return None
    return ParsedKey(key_id=found.group(1), secret=found.group(2))


def is_key_id(text: str) -> bool:
    """Could `text` be a key's id? (The CLI's revoke refuses anything else early.)"""
    return len(text) == KEY_ID_LENGTH and text.isascii() and _KEY_ID.fullmatch(text) is not None


def secret_digest(key_id: str, secret: str) -> str:
    """The stored form of a key's secret: hex SHA-256 over the purpose, the id and the secret
    (why no slow hash and no application key: the module docstring)."""
    message = _DIGEST_PURPOSE + key_id.encode("ascii") + b"\x00" + secret.encode("ascii")
    return hashlib.sha256(message).hexdigest()


def secret_matches(parsed: ParsedKey, stored_digest: str) -> bool:
    expected = secret_digest(parsed.key_id, parsed.secret)
    return hmac.compare_digest(expected.encode("ascii"), stored_digest.encode("ascii", "replace"))


# --- what a key is made with ----------------------------------------------------------------------


def clean_label(label: str) -> str:
    """The label as kept: stripped, inner runs of white space as one space, printable, at
    most LABEL_MAX characters; an empty one is refused."""
    text = " ".join(label.split())
    if not text:
        raise InvalidApiKeyInput("Give the key a label (what it is for).")
    if len(text) > LABEL_MAX:
        raise InvalidApiKeyInput(f"The label is longer than {LABEL_MAX} characters.")
    if not text.isprintable():
        raise InvalidApiKeyInput("The label has characters that cannot be shown.")
    return text


def parse_scopes(names: Iterable[str]) -> frozenset[Scope]:
    """The scopes named (none named: all of them); an unknown name is refused."""
    scopes: set[Scope] = set()
    for name in names:
        try:
            scopes.add(Scope(name.strip()))
        except ValueError:
            known = ", ".join(scope.value for scope in Scope)
            raise InvalidApiKeyInput(
                f"There is no scope {name.strip()[:40]!r} (the scopes: {known})."
            ) from None
    return frozenset(scopes) if scopes else ALL_SCOPES


def scopes_text(scopes: Iterable[Scope]) -> str:
    """Scopes as stored: their names in a fixed order, separated by spaces."""
    return " ".join(sorted(scope.value for scope in set(scopes)))


def scopes_of(text: str) -> frozenset[Scope]:
    """Scopes as stored, read back; a name this version does not know is left out."""
    known = {scope.value for scope in Scope}
    return frozenset(Scope(name) for name in text.split() if name in known)


def parse_expiry(text: str) -> datetime.datetime:
    """`YYYY-MM-DD`: the end of that day, UTC; an ISO 8601 time: that time (UTC when it has
    no offset). Past times are accepted (the key is expired from the start)."""
    value = text.strip()
    if not value or len(value) > 64 or not value.isascii():
        raise InvalidApiKeyInput("The expiry is a date (YYYY-MM-DD) or an ISO 8601 time.")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            day = datetime.date.fromisoformat(value)
        except ValueError:
            raise InvalidApiKeyInput(f"{value} is not a date.") from None
        return end_of_day(day)
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidApiKeyInput(
            "The expiry is a date (YYYY-MM-DD) or an ISO 8601 time such as 2027-01-31T12:00:00Z."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def end_of_day(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(23, 59, 59), tzinfo=datetime.UTC)


# --- may the key be used ------------------------------------------------------------------------


def is_expired(expires_at: datetime.datetime | None, now: datetime.datetime) -> bool:
    return expires_at is not None and now > expires_at


def refusal(
    key: KeyState | None,
    parsed: ParsedKey,
    *,
    account_disabled: bool,
    now: datetime.datetime,
) -> Refusal | None:
    """Why `parsed` (a key sent) is refused given its stored `key` (None: no such id)."""
    if key is None:
        # the same work as for a known key, so the time taken tells nothing about the id
        secret_matches(parsed, "0" * DIGEST_LENGTH)
        return Refusal.INVALID
    if not secret_matches(parsed, key.secret_digest):
        return Refusal.INVALID
    if key.revoked_at is not None:
        return Refusal.REVOKED
    if is_expired(key.expires_at, now):
        return Refusal.EXPIRED
    if account_disabled:
        return Refusal.DISABLED_ACCOUNT
    return None


def touch_due(last_used_at: datetime.datetime | None, now: datetime.datetime) -> bool:
    """Should this use be written to `last_used_at`? (At most once per TOUCH_EVERY.)"""
    return last_used_at is None or now - last_used_at >= TOUCH_EVERY
