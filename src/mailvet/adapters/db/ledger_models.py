"""ORM models of the credit ledger; used by services/credits.py.

`ledger_entries` is append-only: every change of an account's credits is a row with a signed
amount (the kinds are domain.credits.EntryKind); `key` (unique) makes a step idempotent.
`credit_balances` holds one row per account: the row a writer locks (PostgreSQL
`SELECT ... FOR UPDATE`) so that concurrent spends of one account run one after the other,
the cached sum of the account's entries (tests/service/test_credits.py proves them equal)
and their number, which numbers the next entry (`seq`). Registered on `models.metadata`
(imported by adapters/db/schema.py, which the migrations and `Database.create_all` read).
"""

from __future__ import annotations

import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mailvet.adapters.db.models import Base, UtcDateTime


class LedgerEntryRow(Base):
    __tablename__ = "ledger_entries"
    # (account, seq) is the account's order of entries: the history's order, gap-free
    __table_args__ = (UniqueConstraint("account_id", "seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    account_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per account (credit_balances.entries)
    kind: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(Integer)  # signed: + adds credits, - takes them
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    key: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    reason: Mapped[str] = mapped_column(String(1024), default="")
    actor: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())


class CreditBalanceRow(Base):
    """One per account that has had an entry: the lock of its writers and the cached sum."""

    __tablename__ = "credit_balances"

    account_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    balance: Mapped[int] = mapped_column(Integer, default=0)
    entries: Mapped[int] = mapped_column(Integer, default=0)  # the last entry's seq
    # the last purchase or period grant (services/low_credits.py): its amount and seq, and
    # the seq of the top-up whose "credits running low" mail was queued (once per top-up)
    last_topup: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_topup_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    low_warned_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())


class PendingCheckRow(Base):
    """A single check charged and not settled yet (services/single_checks.py): written in
    the charge's transaction, deleted in the settlement's; what is left after a crash, a
    cancellation or a failed settlement is refunded by the sweeper."""

    __tablename__ = "pending_checks"

    check_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    account_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), index=True)
