"""The verdict: one status and one reason per address, and the columns appended to a row.

The column names and the status/reason values are a public contract: customers parse them.
"""

from __future__ import annotations

import enum

import msgspec


class Status(enum.StrEnum):
    DELIVERABLE = "deliverable"
    UNDELIVERABLE = "undeliverable"
    RISKY = "risky"
    UNKNOWN = "unknown"


class Reason(enum.StrEnum):
    # deliverable
    ACCEPTED = "accepted"
    # undeliverable
    INVALID_SYNTAX = "invalid_syntax"
    NO_DOMAIN = "no_domain"
    NO_MX = "no_mx"
    NULL_MX = "null_mx"
    MAILBOX_NOT_FOUND = "mailbox_not_found"
    MAILBOX_DISABLED = "mailbox_disabled"
    REJECTED = "rejected"
    # risky
    CATCH_ALL = "catch_all"
    DISPOSABLE = "disposable"
    MAILBOX_FULL = "mailbox_full"
    SUSPECTED_TYPO = "suspected_typo"  # the domain is a typo of a popular provider
    # unknown
    TIMEOUT = "timeout"
    CONNECTION_FAILED = "connection_failed"
    GREYLISTED = "greylisted"
    SMTP_ERROR = "smtp_error"
    NOT_CHECKED = "not_checked"


STATUS_OF: dict[Reason, Status] = {
    Reason.ACCEPTED: Status.DELIVERABLE,
    Reason.INVALID_SYNTAX: Status.UNDELIVERABLE,
    Reason.NO_DOMAIN: Status.UNDELIVERABLE,
    Reason.NO_MX: Status.UNDELIVERABLE,
    Reason.NULL_MX: Status.UNDELIVERABLE,
    Reason.MAILBOX_NOT_FOUND: Status.UNDELIVERABLE,
    Reason.MAILBOX_DISABLED: Status.UNDELIVERABLE,
    Reason.REJECTED: Status.UNDELIVERABLE,
    Reason.CATCH_ALL: Status.RISKY,
    Reason.DISPOSABLE: Status.RISKY,
    Reason.MAILBOX_FULL: Status.RISKY,
    Reason.SUSPECTED_TYPO: Status.RISKY,
    Reason.TIMEOUT: Status.UNKNOWN,
    Reason.CONNECTION_FAILED: Status.UNKNOWN,
    Reason.GREYLISTED: Status.UNKNOWN,
    Reason.SMTP_ERROR: Status.UNKNOWN,
    Reason.NOT_CHECKED: Status.UNKNOWN,
}


class Check(enum.StrEnum):
    """How far the engine goes: each level includes the ones before it."""

    SYNTAX = "syntax"
    DNS = "dns"
    SMTP = "smtp"


class Verdict(msgspec.Struct, frozen=True, array_like=True):
    """Everything mailvet says about one address. Compact on the wire (array_like)."""

    status: Status
    reason: Reason
    normalized: str = ""
    suggestion: str = ""
    disposable: bool = False
    role: bool = False
    free: bool = False
    # does the domain accept any mailbox? True/False as its catch-all probe answered; None:
    # not established (no probe: syntax or DNS checks, a domain not probed, the check off;
    # or the probe's answer stayed open: tempfails past the retries, no reply, an error)
    catch_all: bool | None = None
    mx: str = ""
    smtp_code: int | None = None
    ascii_email: str = ""  # local@A-label domain when the local part is ASCII, else ""

    def columns(self) -> tuple[str, ...]:
        """The values of RESULT_COLUMNS, as strings, in order (the enums are str themselves)."""
        return (
            self.status,
            self.reason,
            self.normalized,
            self.suggestion,
            _BOOL[self.disposable],
            _BOOL[self.role],
            _BOOL[self.free],
            _BOOL[self.catch_all],
            self.mx,
            "" if self.smtp_code is None else str(self.smtp_code),
            self.ascii_email,
        )


_BOOL = {True: "true", False: "false", None: ""}  # None: not established, an empty cell

RESULT_COLUMNS: tuple[str, ...] = (
    "mailvet_status",
    "mailvet_reason",
    "mailvet_normalized",
    "mailvet_suggestion",
    "mailvet_disposable",
    "mailvet_role",
    "mailvet_free",
    "mailvet_catch_all",
    "mailvet_mx",
    "mailvet_smtp_code",
    "mailvet_ascii_email",
)
