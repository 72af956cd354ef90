"""ORM model of API keys (`api_keys`).

Used by services/api_keys.py. Registered on `models.metadata` (imported by
adapters/db/schema.py, which the migrations and `Database.create_all` read).

The key's secret is never stored: only its SHA-256 digest (domain/api_keys.py says why a fast
hash is right for a 256-bit secret). `id` is the key's public id, the middle part of
`mv_<KEY_ID>_<SECRET>`, so a request's key is found by its primary key, never by a scan.
The row goes with its account (ON DELETE CASCADE; `AccountService.delete_account` also
deletes the account's keys itself, so no key outlives its account where foreign keys are off).
"""

from __future__ import annotations

import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from mailvet.adapters.db.models import Base, UtcDateTime
from mailvet.domain.api_keys import DIGEST_LENGTH, KEY_ID_LENGTH, LABEL_MAX

SCOPES_LENGTH = 255


class ApiKeyRow(Base):
    """One API key of an account. `scopes`: the scope names separated by spaces
    (domain/api_keys.py `scopes_text`); `expires_at` None: never; `revoked_at` set: refused
    from then on; `last_used_at`: written at most once a minute."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(KEY_ID_LENGTH), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(LABEL_MAX))
    secret_hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    scopes: Mapped[str] = mapped_column(String(SCOPES_LENGTH))
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_used_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
