"""ORM models of accounts: accounts, e-mailed codes, recovery codes, password resets.

Used by services/accounts.py.

Registered on `models.metadata` (imported by adapters/db/schema.py, which the migrations and
`Database.create_all` read).

Secrets are never stored as given: e-mailed codes, recovery codes and reset tokens are kept as
keyed SHA-256 digests (hex), passwords as argon2id hashes, the TOTP secret as a Fernet token.
"""

from __future__ import annotations

import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailvet.adapters.db.models import Base, UtcDateTime

EMAIL_LENGTH = 320  # RFC 5321: 64 + 1 + 255, rounded as usual
DIGEST_LENGTH = 64  # hex SHA-256


class AccountRow(Base):
    """A person who signs in. `email` is stored casefolded; `google_sub` links Google sign-in."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex, made by the caller
    email: Mapped[str] = mapped_column(String(EMAIL_LENGTH), unique=True)
    password_hash: Mapped[str | None] = mapped_column(
        String(255), nullable=True
    )  # None: Google only
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    newsletter: Mapped[bool] = mapped_column(Boolean, default=False)
    role: Mapped[str] = mapped_column(String(16), default="user")  # user | admin
    confirmed_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    google_sub: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    google_picture: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    avatar_key: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    totp_secret: Mapped[str | None] = mapped_column(String(512), nullable=True)  # Fernet token
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    password_changed_at: Mapped[datetime.datetime | None] = mapped_column(
        UtcDateTime(), nullable=True
    )
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())


class EmailCodeRow(Base):
    """The 6-digit code mailed to an account for one purpose (one live code per purpose)."""

    __tablename__ = "email_codes"

    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    expires_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # wrong entries so far
    sends: Mapped[int] = mapped_column(Integer, default=1)  # the first mail counts
    last_sent_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())


class RecoveryCodeRow(Base):
    """One unused recovery code of an account's second factor; using it deletes the row."""

    __tablename__ = "recovery_codes"

    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    code_hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH), primary_key=True)


class PasswordResetRow(Base):
    """A mailed password-reset link; only the digest of its token is kept."""

    __tablename__ = "password_resets"

    token_hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
