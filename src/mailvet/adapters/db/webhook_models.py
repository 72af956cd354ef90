"""ORM models of the completion webhooks (services/webhooks.py): an account's endpoint and
secret, a job's own callback URL, and the deliveries with their attempts.

Registered on `models.metadata` (imported by adapters/db/schema.py, which the migrations and
`Database.create_all` read).

- `webhook_endpoints`: one row per account that has a secret (made on first need) and maybe
  a default URL. The secret is kept as shown: it is the HMAC key, shown on the page and
  printed by `mailvet webhooks secret`, as Stripe shows its signing secrets again.
- `job_callbacks`: the `callback_url` a job was started with through the API. A table of its
  own rather than a column of `jobs`: the pipeline's repositories read and write `jobs` and
  never need it, and adding a column to SQLite's biggest table means copying it. No foreign
  key either: the API stores it before the job is submitted (the job row may not exist yet,
  and a job that ends at once must find its URL); the sweep deletes the rows left of jobs
  that are gone.
- `webhook_deliveries`: one event to one URL (`key` unique: `job.completed:<job id>`, so a
  completion reported twice queues one), its body fixed when queued, pending while
  `next_attempt_at` is set (claimed like the mail outbox: `claim` and a lease), then
  delivered or given up; `attempt_log` lists each attempt (time, status code or error).
  `job_id` has no foreign key: the record outlives a job deleted or purged meanwhile; the
  rows go with their account.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailvet.adapters.db.models import Base, UtcDateTime
from mailvet.domain import webhooks as rules

URL_LENGTH = rules.MAX_URL
SECRET_LENGTH = rules.SECRET_LENGTH  # the column: whsec_ and the secret, with room


class WebhookEndpointRow(Base):
    __tablename__ = "webhook_endpoints"

    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(SECRET_LENGTH))
    url: Mapped[str] = mapped_column(String(URL_LENGTH), default="")  # "": no default URL
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    # when `url` was last set: only jobs that end after it are told (a new default URL does
    # not call out for the jobs of the days before)
    url_set_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())


class JobCallbackRow(Base):
    __tablename__ = "job_callbacks"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # no foreign key: see above
    url: Mapped[str] = mapped_column(String(URL_LENGTH))
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())


class WebhookDeliveryRow(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # an account's deliveries newest first (the page)
        Index("ix_webhook_deliveries_account_id_created_at", "account_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the event id, evt_...
    key: Mapped[str] = mapped_column(String(200), unique=True)  # job.completed:<job id>
    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(URL_LENGTH))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | given_up
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # None once delivered or given up
    next_attempt_at: Mapped[datetime.datetime | None] = mapped_column(
        UtcDateTime(), nullable=True, index=True
    )
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    given_up_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
