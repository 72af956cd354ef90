"""Outgoing mail of the SaaS: what a message is, who may receive it, when a failed one is
tried again.

Pure rules (no SMTP, no database). The use cases put an `OutgoingMail` in the durable outbox
(services/outbox.py, in the caller's transaction); the outbox sender renders it
(adapters/mail/render.py) and hands it to a `Mailer` (adapters/mail/: smtp, log, memory).

Hostile input stops here: an `OutgoingMail` whose recipient is not one plain address, or
whose context holds a line break or another control character (a name like
``"Ann\\r\\nBcc: x@evil"``), cannot be made (ValueError), so no header is ever built from it.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import msgspec

# Every template and the context keys it needs (more keys may be given; `first_name` is used
# when present). `link` is a full URL made by the caller (password reset); the job link is
# made from MAILVET_PUBLIC_URL and `job_id`.
TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "confirm_code": frozenset({"code"}),
    "password_reset": frozenset({"link"}),
    "password_changed": frozenset(),
    "account_exists": frozenset(),
    "two_factor_enabled": frozenset(),
    "two_factor_disabled": frozenset(),
    "job_completed": frozenset({"job_id"}),
    "sessions_ended": frozenset(),
    # billing (services/billing_mail.py makes the context; the link to /app/billing is the
    # template's, from MAILVET_PUBLIC_URL)
    "subscription_confirmed": frozenset({"tier"}),
    "subscription_cancelled": frozenset({"tier", "ends_on"}),
    "subscription_ended": frozenset(),
    "payment_failed": frozenset({"invoice", "amount"}),
    "low_credits": frozenset({"balance", "last_topup"}),
}

MAX_ADDRESS_LENGTH = 254  # RFC 5321 path limit less the angle brackets
MAX_CONTEXT_VALUE = 4096

# one addr-spec: no spaces, controls, brackets, commas, quotes or a second @ (the sign-up form
# stores a normalised address, so nothing legitimate needs more)
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\\\"]+@[^\s@<>()\[\],;:\\\"]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def is_plain_address(value: str) -> bool:
    """True if `value` is one bare address that can go in a To: header as it is."""
    return (
        len(value) <= MAX_ADDRESS_LENGTH
        and _ADDRESS.fullmatch(value) is not None
        and _CONTROL.search(value) is None
    )


def is_header_safe(value: str) -> bool:
    """True if `value` holds no line break or other control character (it may be shown in a
    mail: a CR or LF there could start a header of its own)."""
    return _CONTROL.search(value) is None


class OutgoingMail(msgspec.Struct, frozen=True):
    """A message to send: the recipient, the template's name and its context (strings).

    Raises ValueError for an unknown template, a missing context key, a recipient that is not
    one plain address or a context value with a control character or over 4 KiB.
    """

    to: str
    template: str
    context: dict[str, str]

    def __post_init__(self) -> None:
        if not is_plain_address(self.to):
            raise ValueError("the recipient must be one plain address")
        needed = TEMPLATE_FIELDS.get(self.template)
        if needed is None:
            raise ValueError(f"unknown mail template {self.template!r}")
        missing = needed - self.context.keys()
        if missing:
            raise ValueError(f"template {self.template!r} needs {', '.join(sorted(missing))}")
        for key, value in self.context.items():
            if not isinstance(value, str) or len(value) > MAX_CONTEXT_VALUE:
                raise ValueError(f"context value {key!r} must be a string of at most 4 KiB")
            if not is_header_safe(value):
                raise ValueError(f"context value {key!r} holds a control character")


class MailDeliveryError(Exception):
    """A delivery attempt failed. `temporary`: worth trying again later (server down, 4xx,
    TLS not offered, timeout); else the message cannot be delivered as it is (the recipient
    refused with 5xx) and is given up at once, on record."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


class Mailer(Protocol):
    """Hands one message to the mail system; raises MailDeliveryError when it could not."""

    async def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed message is tried again.

    The n-th failed attempt (n >= 1) waits `first_delay * 2**(n-1)`, at most `max_delay`
    (1 hour). A temporary failure is tried again for as long as it takes: an SMTP outage
    over a weekend delays the mail, it never loses it. Only a permanent failure (the server
    refuses the recipient with 5xx, a stored row that is not a valid mail) gives the message
    up, at once, on record (its row keeps the error; it is never deleted for failing).
    """

    first_delay: datetime.timedelta = datetime.timedelta(seconds=30)
    max_delay: datetime.timedelta = datetime.timedelta(hours=1)

    def delay(self, attempts: int) -> datetime.timedelta:
        """The wait after the `attempts`-th failed attempt."""
        if attempts < 1:
            raise ValueError("attempts starts at 1")
        # 2**n grows past any cap quickly: stop doubling once over it (no huge integers)
        exponent = min(attempts - 1, 40)
        return min(self.first_delay * (1 << exponent), self.max_delay)

    def next_attempt(
        self, *, attempts: int, now: datetime.datetime, temporary: bool
    ) -> datetime.datetime | None:
        """When to try again after the `attempts`-th attempt failed at `now`; None: give up
        (a permanent failure only)."""
        if not temporary:
            return None
        return now + self.delay(attempts)
