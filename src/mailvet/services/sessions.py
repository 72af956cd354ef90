"""Server-side web sessions in `web_sessions`: create, load, save, rotate, end.

The browser holds a random token (`new_token`: 32 bytes, URL-safe); the table holds only
its SHA-256 (`token_hash`), so a leaked copy of the table signs nobody in. A session row
exists only once there is something to keep (a sign-in, a flash message, an OAuth state):
anonymous visitors with nothing to keep cost no write. A token the table does not know is
never adopted (web/sessions.py issues a fresh one), and signing in always moves the data to
a fresh token (`rotate`): no session fixation.

Every function takes the caller's unit of work and does not commit.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.database import rowcount
from mailvet.adapters.db.session_models import WebSessionRow

TOKEN_BYTES = 32


class StoredSession(msgspec.Struct, frozen=True, kw_only=True):
    token_hash: str
    account_id: str | None
    data: dict[str, Any]
    created_at: datetime
    last_seen_at: datetime
    authenticated_at: datetime | None
    expires_at: datetime


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


async def load(session: AsyncSession, token_hash: str, *, now: datetime) -> StoredSession | None:
    """The live session of `token_hash`, or None (unknown, or expired)."""
    row = await session.get(WebSessionRow, token_hash)
    if row is None or row.expires_at <= now:
        return None
    return _stored(row)


async def create(
    session: AsyncSession,
    *,
    data: dict[str, Any],
    account_id: str | None,
    authenticated_at: datetime | None,
    now: datetime,
    max_age: int,
) -> tuple[str, StoredSession]:
    """A new session under a fresh token; returns the token (for the cookie) and the row."""
    token = new_token()
    row = WebSessionRow(
        token_hash=hash_token(token),
        account_id=account_id,
        data=dict(data),
        created_at=now,
        last_seen_at=now,
        authenticated_at=authenticated_at,
        expires_at=now + timedelta(seconds=max_age),
    )
    session.add(row)
    await session.flush()
    return token, _stored(row)


async def save(
    session: AsyncSession,
    token_hash: str,
    *,
    data: dict[str, Any],
    now: datetime,
) -> bool:
    """Write the data of a live session (and when it was last seen). False when the row is
    gone meanwhile (ended by "sign out everywhere" during this request): it stays gone."""
    result = await session.execute(
        update(WebSessionRow)
        .where(WebSessionRow.token_hash == token_hash, WebSessionRow.expires_at > now)
        .values(data=dict(data), last_seen_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) > 0


async def rotate(
    session: AsyncSession,
    old_token_hash: str | None,
    *,
    data: dict[str, Any],
    account_id: str | None,
    authenticated_at: datetime | None,
    now: datetime,
    max_age: int,
) -> tuple[str, StoredSession]:
    """End `old_token_hash` (if any) and carry `data` over to a fresh token: what sign-in
    and sign-out do, so a token seen before the change is worth nothing after it."""
    if old_token_hash is not None:
        await end(session, old_token_hash)
    return await create(
        session,
        data=data,
        account_id=account_id,
        authenticated_at=authenticated_at,
        now=now,
        max_age=max_age,
    )


async def end(session: AsyncSession, token_hash: str) -> None:
    await session.execute(
        delete(WebSessionRow)
        .where(WebSessionRow.token_hash == token_hash)
        .execution_options(synchronize_session=False)
    )


async def end_all_sessions(
    session: AsyncSession, account_id: str, *, except_token_hash: str | None = None
) -> int:
    """End every session signed in as `account_id` (but `except_token_hash`, the caller's
    own, when given); returns how many ended. Password reset and change, "sign out
    everywhere", disabling and deleting an account call it."""
    statement = delete(WebSessionRow).where(WebSessionRow.account_id == account_id)
    if except_token_hash is not None:
        statement = statement.where(WebSessionRow.token_hash != except_token_hash)
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return rowcount(result)


async def purge_expired(session: AsyncSession, *, now: datetime) -> int:
    """Delete the rows past their expiry; returns how many (a periodic task calls it)."""
    result = await session.execute(
        delete(WebSessionRow)
        .where(WebSessionRow.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


def _stored(row: WebSessionRow) -> StoredSession:
    return StoredSession(
        token_hash=row.token_hash,
        account_id=row.account_id,
        data=dict(row.data),
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        authenticated_at=row.authenticated_at,
        expires_at=row.expires_at,
    )
