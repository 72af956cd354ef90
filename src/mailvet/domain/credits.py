"""Credits: the rules of the append-only ledger (one credit validates one address).

Every change of an account's credits is an entry with a signed amount; nothing is ever
updated or deleted. The spendable balance is the sum of the entries; a job's reservation is
an entry of minus its cost, and its settlement gives back what was not charged, so while a
job runs its cost is already out of the balance (`Balance.reserved` says how much of that
is held by jobs not settled yet).

- A job costs the number of distinct, syntactically valid addresses of its file
  (`job_cost`). It reserves that when its file is accepted, or fails with the shortfall.
- At completion it is charged for the distinct addresses whose verdict is not refunded:
  `unknown` for a reason the customer did not choose (`REFUNDED_REASONS`: the network
  failed us); `not_checked` (the customer asked for fewer checks) is charged
  (`job_charge`). Duplicates were never in the cost, so they are never charged.
- Idempotency: every entry of a job or a single check carries a unique key
  (`reserve_key`, `settle_key`, ...): a replayed step changes nothing.

`LedgerBook` is the reference ledger in memory (the same decisions as the SQL service in
mailvet.services.credits); `CreditLedger` is the port the pipeline reserves and settles
through, `FreeLedger` the one that charges nothing (MAILVET_CREDITS=off, or a job without
an owner such as `mailvet validate`).
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


# kinds that may only add credits (grant() takes these, and admin adjustments)
GRANT_KINDS = frozenset({EntryKind.SIGNUP_GRANT, EntryKind.PURCHASE, EntryKind.REFUND})

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


def reserved_of(entries: Iterable[Entry]) -> int:
    """Credits held by reservations without a settlement, among `entries`."""
    held: dict[str, int] = {}
    settled: set[str] = set()
    for entry in entries:
        if entry.kind is EntryKind.JOB_RESERVE and entry.job_id is not None:
            held[entry.job_id] = -entry.amount
        elif entry.kind is EntryKind.JOB_SETTLE and entry.job_id is not None:
            settled.add(entry.job_id)
    return sum(cost for job_id, cost in held.items() if job_id not in settled)


class LedgerBook:
    """The ledger of every account in memory: the reference the SQL service follows (and
    what the rules' property tests drive). `entries` is the append-only record."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._keys: dict[str, Entry] = {}

    def _append(self, entry: Entry) -> None:
        if entry.key is not None:
            self._keys[entry.key] = entry
        self.entries.append(entry)

    def _entry(
        self,
        account_id: str,
        kind: EntryKind,
        amount: int,
        now: datetime,
        *,
        job_id: str | None = None,
        key: str | None = None,
        reason: str = "",
        actor: str = "",
    ) -> Entry:
        return Entry(
            id=f"e{len(self.entries)}",
            account_id=account_id,
            kind=kind,
            amount=amount,
            created_at=now,
            job_id=job_id,
            key=key,
            reason=reason,
            actor=actor,
        )

    def of(self, account_id: str) -> list[Entry]:
        return [entry for entry in self.entries if entry.account_id == account_id]

    def balance(self, account_id: str) -> Balance:
        mine = self.of(account_id)
        return Balance(sum(entry.amount for entry in mine), reserved_of(mine))

    def grant(
        self,
        account_id: str,
        amount: int,
        *,
        kind: EntryKind,
        now: datetime,
        reason: str = "",
        actor: str = "",
        key: str | None = None,
    ) -> bool:
        """Add credits; False (nothing changed) when `key` was used before."""
        check_grant(kind, amount)
        if key is not None and key in self._keys:
            return False
        entry = self._entry(account_id, kind, amount, now, key=key, reason=reason, actor=actor)
        self._append(entry)
        return True

    def adjust(
        self, account_id: str, amount: int, *, actor: str, reason: str, now: datetime
    ) -> Shortfall | None:
        """An administrator's change of either sign; a removal past the balance is refused."""
        if not actor or not reason:
            raise ValueError("an adjustment says who made it and why")
        if amount == 0:
            raise ValueError("an adjustment changes the balance")
        if amount < 0 and (short := spend(self.balance(account_id).balance, -amount)):
            return short
        entry = self._entry(
            account_id, EntryKind.ADMIN_ADJUSTMENT, amount, now, reason=reason, actor=actor
        )
        self._append(entry)
        return None

    def reserve_for_job(
        self, account_id: str, job_id: str, cost: int, now: datetime
    ) -> Reservation | Shortfall:
        done = self._keys.get(reserve_key(job_id))
        if done is not None:  # replayed: the reservation made the first time
            return Reservation(job_id, -done.amount)
        if short := spend(self.balance(account_id).balance, cost):
            return short
        entry = self._entry(
            account_id, EntryKind.JOB_RESERVE, -cost, now, job_id=job_id, key=reserve_key(job_id)
        )
        self._append(entry)
        return Reservation(job_id, cost)

    def settle_job(self, job_id: str, *, charged: int, now: datetime) -> int | None:
        """Give back what the job was not charged; the refund, or None when there is nothing
        to settle (no reservation, or settled before)."""
        reserved = self._keys.get(reserve_key(job_id))
        if reserved is None or settle_key(job_id) in self._keys:
            return None
        refund = settlement_refund(-reserved.amount, charged)
        entry = self._entry(
            reserved.account_id,
            EntryKind.JOB_SETTLE,
            refund,
            now,
            job_id=job_id,
            key=settle_key(job_id),
        )
        self._append(entry)
        return refund

    def charge_single(self, account_id: str, check_id: str, now: datetime) -> Shortfall | None:
        if single_key(check_id) in self._keys:
            return None
        if short := spend(self.balance(account_id).balance, 1):
            return short
        entry = self._entry(account_id, EntryKind.SINGLE_CHECK, -1, now, key=single_key(check_id))
        self._append(entry)
        return None

    def refund_single(self, check_id: str, now: datetime) -> bool:
        charge = self._keys.get(single_key(check_id))
        if charge is None or single_refund_key(check_id) in self._keys:
            return False
        entry = self._entry(
            charge.account_id, EntryKind.SINGLE_REFUND, 1, now, key=single_refund_key(check_id)
        )
        self._append(entry)
        return True


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
