"""Credits: the rules of the append-only ledger (one credit validates one address).

Every change of an account's credits is an entry with a signed amount; nothing is ever
updated or deleted. The spendable balance is the sum of the entries (kept as each account's
cached balance); a job's reservation is an entry of minus its cost, and its settlement
gives back what was not charged, so while a job runs its cost is already out of the
balance (`Balance.reserved` says how much of that is held by jobs not settled yet).

- A job costs the number of distinct, syntactically valid addresses of its file
  (`job_cost`). It reserves that when its file is accepted, or fails with the shortfall.
- At completion it is charged for the distinct addresses whose verdict is not refunded:
  `unknown` for a reason the customer did not choose (`REFUNDED_REASONS`: the network
  failed us); `not_checked` (the customer asked for fewer checks) is charged
  (`job_charge`). Duplicates were never in the cost, so they are never charged.
- Idempotency: every entry of a job or a single check carries a unique key
  (`reserve_key`, `settle_key`, ...): a replayed step changes nothing.

The ledger itself is mailvet.services.credits (on the database); `CreditLedger` is the port
the pipeline reserves and settles through, `FreeLedger` the one that charges nothing
(MAILVET_CREDITS=off, or a job without an owner such as `mailvet validate`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

import msgspec

from mailvet.domain.job import Job
from mailvet.domain.verdict import Reason


class EntryKind(enum.StrEnum):
    SIGNUP_GRANT = "signup_grant"
    PURCHASE = "purchase"
    JOB_RESERVE = "job_reserve"  # minus the job's cost, when its file is accepted
    JOB_SETTLE = "job_settle"  # plus what the job was not charged (0 when all was)
    REFUND = "refund"  # a refund granted by hand or by billing
    SINGLE_CHECK = "single_check"  # minus one, for one address checked
    SINGLE_REFUND = "single_refund"  # plus one, when that check's verdict is refunded
    ADMIN_ADJUSTMENT = "admin_adjustment"  # either sign, with who and why
    SUBSCRIPTION_GRANT = "subscription_grant"  # a paid billing period's credits (Stripe)
    PAYMENT_REFUND = "payment_refund"  # minus what a Stripe refund of a pack takes back (>= 0)


# kinds that may only add credits (grant() takes these, and admin adjustments)
GRANT_KINDS = frozenset(
    {EntryKind.SIGNUP_GRANT, EntryKind.PURCHASE, EntryKind.REFUND, EntryKind.SUBSCRIPTION_GRANT}
)

# top-ups: what "credits running low" is measured against (under a tenth of the last one)
TOPUP_KINDS = frozenset({EntryKind.PURCHASE, EntryKind.SUBSCRIPTION_GRANT})

# unknown verdicts the customer did not ask for: the credit goes back
REFUNDED_REASONS = frozenset(
    {Reason.TIMEOUT, Reason.CONNECTION_FAILED, Reason.GREYLISTED, Reason.SMTP_ERROR}
)


def is_refunded(reason: str) -> bool:
    """Is a verdict with this reason given back (see REFUNDED_REASONS)?"""
    return reason in REFUNDED_REASONS


def job_cost(normalized_valid: Iterable[str]) -> int:
    """A job's cost: the number of distinct normalized forms of its valid addresses."""
    return len(set(normalized_valid))


def job_charge(cost: int, refunded: Iterable[str]) -> int:
    """What a job with `cost` is charged when the distinct normalized addresses `refunded`
    ended unknown for a refunded reason (an address refunded on any of its rows is
    refunded). Never below 0 nor above the cost."""
    return max(0, min(cost, cost - len(set(refunded))))


def settlement_refund(reserved: int, charged: int) -> int:
    """What the settlement gives back of a reservation of `reserved` when `charged` is
    charged (a charge above the reservation is capped: a job never costs more)."""
    if reserved < 0 or charged < 0:
        raise ValueError("reserved and charged are counts")
    return reserved - min(charged, reserved)


def reserve_key(job_id: str) -> str:
    return f"job-reserve:{job_id}"


def settle_key(job_id: str) -> str:
    return f"job-settle:{job_id}"


def single_key(check_id: str) -> str:
    return f"single:{check_id}"


def single_refund_key(check_id: str) -> str:
    return f"single-refund:{check_id}"


def adjust_key(account_id: str, nonce: str) -> str:
    """An administrator's adjustment, keyed by its form's one-time nonce."""
    return f"admin-adjust:{account_id}:{nonce}"


class Balance(msgspec.Struct, frozen=True):
    """`balance`: spendable credits (the sum of the entries); `reserved`: how much of what
    was taken out is held by jobs that are not settled yet."""

    balance: int
    reserved: int = 0


class Shortfall(msgspec.Struct, frozen=True):
    """Not enough credits: `needed` asked for, `available` spendable."""

    needed: int
    available: int

    @property
    def missing(self) -> int:
        return self.needed - self.available

    def message(self) -> str:
        return (
            f"insufficient credits: this list needs {self.needed}, "
            f"the balance is {self.available} ({self.missing} missing)"
        )


class Reservation(msgspec.Struct, frozen=True):
    job_id: str
    cost: int


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One ledger entry, as the history lists it."""

    id: str
    account_id: str
    kind: EntryKind
    amount: int
    created_at: datetime
    job_id: str | None = None
    key: str | None = None
    reason: str = ""
    actor: str = ""


def spend(available: int, cost: int) -> Shortfall | None:
    """May `cost` credits be taken from `available`? None: yes; else the shortfall."""
    if cost < 0:
        raise ValueError("a cost is a count")
    return None if cost <= available else Shortfall(needed=cost, available=available)


def check_grant(kind: EntryKind, amount: int) -> None:
    if kind not in GRANT_KINDS:
        raise ValueError(f"{kind} is not a grant")
    if amount <= 0:
        raise ValueError("a grant adds credits")


def check_take_back(amount: int, reason: str) -> None:
    """A refund taking credits back takes a count (0 when jobs used them all) and says why."""
    if amount < 0:
        raise ValueError("what is taken back is a count")
    if not reason:
        raise ValueError("a take-back says why")


def check_adjustment(amount: int, actor: str, reason: str) -> None:
    """An administrator's adjustment says who made it and why, and changes the balance
    (either sign; a removal past the balance is `spend`'s to refuse)."""
    if not actor or not reason:
        raise ValueError("an adjustment says who made it and why")
    if amount == 0:
        raise ValueError("an adjustment changes the balance")


# --- the port the pipeline uses ----------------------------------------------------------


class CreditLedger(Protocol):
    """What intake and the result generator reserve and settle a job's credits through."""

    def charges(self, job: Job) -> bool:
        """Does this job pay? (False: intake need not even count its cost.)"""
        ...

    async def reserve(self, job: Job, cost: int) -> Shortfall | None:
        """Take `cost` credits from the job's owner; the shortfall if there are not enough.
        A job reserved before keeps its first reservation (redelivery)."""
        ...

    async def settle(self, job: Job, charged: int) -> None:
        """Give back what the job was not charged; once per job (later calls do nothing),
        and nothing for a job that reserved nothing or does not pay (`charges`)."""
        ...


class FreeLedger:
    """Everything is free: MAILVET_CREDITS=off, or no one to charge."""

    def charges(self, job: Job) -> bool:
        return False

    async def reserve(self, job: Job, cost: int) -> Shortfall | None:
        return None

    async def settle(self, job: Job, charged: int) -> None:
        return None
