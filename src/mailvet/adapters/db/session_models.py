"""ORM models of web sessions and shared rate-limit counters.

Used by services/sessions.py (web/sessions.py's session backend) and services/throttle.py
(web/throttle.py's per-IP limit, and the per-form limits of the other areas).

Registered on `models.metadata` (imported by adapters/db/schema.py, which the migrations and
`Database.create_all` read).
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailvet.adapters.db.models import Base, UtcDateTime

TOKEN_HASH_LENGTH = 64  # hex SHA-256 of the cookie's token
COUNTER_KEY_LENGTH = 255


class WebSessionRow(Base):
    """One browser session. The cookie holds a random token; only its SHA-256 is stored, so
    a copy of this table signs nobody in. `account_id` is None until sign-in; it is indexed
    so that every session of an account can be ended at once (sign out everywhere, password
    reset). No foreign key to `accounts`: deleting an account ends its sessions itself."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    authenticated_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    expires_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), index=True)


class RateCounterRow(Base):
    """A fixed-window counter shared by every web replica: `count` hits of `key` since
    `window_start` (Unix seconds, a multiple of the window's length)."""

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(COUNTER_KEY_LENGTH), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
