"""ORM models of the mail outbox (durable, retried); used by services/outbox.py.

Registered on `models.metadata` (imported by adapters/db/schema.py, which the migrations and
`Database.create_all` read).

A row is pending while `next_attempt_at` is set: it is due once that time has passed. A sender
claims a due row by moving `next_attempt_at` to the end of its lease and writing its
`claim`; it then sends, and marks the row sent (`sent_at`, the context emptied: it held the
code or link) or failed (`last_error`, and the next attempt or `given_up_at`). A sender that
dies mid-send leaves the row to come due again when the lease ends. A row may carry a unique
`key`: enqueueing the same key again adds nothing.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailvet.adapters.db.models import Base, UtcDateTime


class OutboxRow(Base):
    """One outgoing message, kept after delivery (or giving up) as the record of it."""

    __tablename__ = "mail_outbox"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    to: Mapped[str] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # None once sent or given up
    next_attempt_at: Mapped[datetime.datetime | None] = mapped_column(
        UtcDateTime(), nullable=True, index=True
    )
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sent_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    given_up_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # an idempotency key (None: none): one row per key, so a mail asked for again by a
    # redelivered event ("job_completed:<job id>") is not queued twice
    key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
