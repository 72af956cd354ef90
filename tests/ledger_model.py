"""The credit ledger as a model in memory, and what the tests read of the SQL one.

`LedgerBook` makes the decisions of mailvet.services.credits over a list of entries, on the
rules of domain.credits: the differential test (tests/service/test_credits.py) runs random
steps on both and compares them. `entries_sum` and `cached_balance` read the SQL ledger the
long way and the short way, so a test can check that the balance row every spend is decided
on equals the sum of the entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.ledger_models import CreditBalanceRow, LedgerEntryRow
from mailvet.domain.credits import (
    Balance,
    Entry,
    EntryKind,
    Reservation,
    Shortfall,
    check_adjustment,
    check_grant,
    reserve_key,
    settle_key,
    settlement_refund,
    single_key,
    single_refund_key,
    spend,
)


async def entries_sum(session: AsyncSession, account_id: str) -> int:
    """The sum of the account's entries (what its cached balance must equal)."""
    query = select(func.coalesce(func.sum(LedgerEntryRow.amount), 0)).where(
        LedgerEntryRow.account_id == account_id
    )
    return int((await session.execute(query)).scalar_one())


async def cached_balance(session: AsyncSession, account_id: str) -> int | None:
    """The account's balance row (None before its first entry)."""
    query = select(CreditBalanceRow.balance).where(CreditBalanceRow.account_id == account_id)
    return (await session.execute(query)).scalar_one_or_none()


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
    """The ledger of every account in memory: the reference the SQL service is compared
    with (tests/service/test_credits.py) and what the rules' property tests drive.
    `entries` is the append-only record."""

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
        check_adjustment(amount, actor, reason)
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
