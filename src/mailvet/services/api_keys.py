"""API keys: the use cases of making, listing, revoking and checking keys on the database
(the rules are in domain/api_keys.py).

`create_key`, `list_keys`, `revoke_key` and `delete_account_keys` take the caller's unit of
work (`session`, inside a transaction) and do not commit, as services/accounts.py does; the
web page (web/api_keys/) and the CLI (`mailvet apikeys ...`, cli_apikeys.py) call them
alike. A key's text is returned once, by `create_key`; only its digest is stored.

`authenticate(database, text, now=...)` is what every API request calls: the key is parsed
(hostile text is "invalid", never an exception), its row read by its id (the primary key:
one row, never a scan of the keys), the secret compared in constant time, then revoked,
expired and the account's state decide. It reads the row afresh on every request, so a
revocation or an expiry takes effect at once, in every replica: the lookups of the requests
of one moment are one read (services/coalesce.py: one `IN` query for a round of them, each
round begun after its requests came; nothing is kept after it). `last_used_at` is written
at most once a minute per key (a conditional UPDATE in a short transaction of its own, so a
busy key costs one write a minute and the check itself stays a read).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

import msgspec
from sqlalchemy import Select, Table, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.api_key_models import ApiKeyRow
from mailvet.adapters.db.database import Database, rowcount, write_intent
from mailvet.domain import api_keys as rules
from mailvet.domain.api_keys import ApiPrincipal, InvalidApiKeyInput, KeyState, Refusal
from mailvet.logs import logger
from mailvet.services.reads import Held, PerDatabase

# live (unrevoked) keys an account may hold at once: a runaway script cannot fill the table
MAX_LIVE_KEYS = 50

__all__ = [
    "MAX_LIVE_KEYS",
    "ApiKeyInfo",
    "ApiPrincipal",
    "CreatedKey",
    "InvalidApiKeyInput",
    "NoSuchAccount",
    "Refusal",
    "authenticate",
    "create_key",
    "delete_account_keys",
    "list_keys",
    "revoke_key",
]


class NoSuchAccount(InvalidApiKeyInput):
    """A key for an account that does not exist."""


class ApiKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A key as the keys page and `mailvet apikeys list` show it: never its secret."""

    id: str
    label: str
    scopes: list[str]  # sorted names
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, now: datetime) -> bool:
        return rules.is_expired(self.expires_at, now)


class CreatedKey(msgspec.Struct, frozen=True):
    """A key just made: `key` is its text, shown this once and stored nowhere."""

    key: str
    info: ApiKeyInfo


def _info(row: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        label=row.label,
        scopes=sorted(scope.value for scope in rules.scopes_of(row.scopes)),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


async def create_key(
    session: AsyncSession,
    account_id: str,
    *,
    label: str,
    scopes: Iterable[str] = (),
    expires_at: datetime | None = None,
    now: datetime,
) -> CreatedKey:
    """A new key of `account_id` (no scopes named: all of them; `expires_at` None: never,
    in the past: made expired). Raises InvalidApiKeyInput (a bad label or scope, too many
    live keys) and NoSuchAccount."""
    clean = rules.clean_label(label)
    granted = rules.parse_scopes(scopes)
    await write_intent(session)  # reads, then writes: a writer from the start (SQLite)
    if await session.get(AccountRow, account_id) is None:
        raise NoSuchAccount("There is no such account.")
    live = select(func.count()).where(
        ApiKeyRow.account_id == account_id, ApiKeyRow.revoked_at.is_(None)
    )
    if (await session.execute(live)).scalar_one() >= MAX_LIVE_KEYS:
        raise InvalidApiKeyInput(
            f"An account has at most {MAX_LIVE_KEYS} keys: revoke one you no longer use."
        )
    made = rules.new_key()
    row = ApiKeyRow(
        id=made.key_id,
        account_id=account_id,
        label=clean,
        secret_hash=made.digest,
        scopes=rules.scopes_text(granted),
        created_at=now,
        expires_at=expires_at,
        last_used_at=None,
        revoked_at=None,
    )
    session.add(row)
    await session.flush()
    logger(__name__).info(
        "api_key_created", account_id=account_id, key_id=made.key_id, scopes=row.scopes
    )
    return CreatedKey(key=made.text, info=_info(row))


async def list_keys(session: AsyncSession, account_id: str) -> list[ApiKeyInfo]:
    """The account's keys, newest first (revoked ones too, marked so)."""
    query = (
        select(ApiKeyRow)
        .where(ApiKeyRow.account_id == account_id)
        .order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.id)
    )
    return [_info(row) for row in (await session.execute(query)).scalars()]


async def revoke_key(
    session: AsyncSession, key_id: str, *, now: datetime, account_id: str | None = None
) -> ApiKeyInfo | None:
    """Revoke a key (from now on every request with it is refused). `account_id` given (the
    web page): only a key of that account; None (the CLI): any key. None when there is no
    such key (of that account); a key revoked before keeps its first revocation time."""
    if not rules.is_key_id(key_id):
        return None
    statement = (
        update(ApiKeyRow)
        .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if account_id is not None:
        statement = statement.where(ApiKeyRow.account_id == account_id)
    revoked = rowcount(await session.execute(statement)) > 0
    query = select(ApiKeyRow).where(ApiKeyRow.id == key_id)
    if account_id is not None:
        query = query.where(ApiKeyRow.account_id == account_id)
    row = (await session.execute(query.execution_options(populate_existing=True))).scalar()
    if row is None:
        return None
    if revoked:
        logger(__name__).info("api_key_revoked", account_id=row.account_id, key_id=row.id)
    return _info(row)


async def delete_account_keys(session: AsyncSession, account_id: str) -> int:
    """Delete every key of an account (its deletion); how many went."""
    result = await session.execute(delete(ApiKeyRow).where(ApiKeyRow.account_id == account_id))
    return rowcount(result)


async def authenticate(
    database: Database, text: str | None, *, now: datetime
) -> ApiPrincipal | Refusal:
    """Who the key `text` (as the request sent it; None or empty: none sent) speaks for, or
    why it is refused: missing, invalid, revoked, expired, disabled account."""
    if text is None or not text.strip():
        return Refusal.MISSING
    parsed = rules.parse_key(text)
    if parsed is None:
        return Refusal.INVALID
    row = await _LOOKUPS.of(database).submit(parsed.key_id)
    state = None
    if row is not None:
        state = KeyState(
            key_id=row.id,
            secret_digest=row.secret_hash,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )
    disabled = row is not None and row.disabled
    refused = rules.refusal(state, parsed, account_disabled=disabled, now=now)
    if refused is not None or row is None:
        return refused or Refusal.INVALID
    if row.first and rules.touch_due(row.last_used_at, now):
        await _touch(database, row.id, now)
    return ApiPrincipal(
        account_id=row.account_id, key_id=row.id, scopes=rules.scopes_of(row.scopes)
    )


class _KeyRow(msgspec.Struct, frozen=True):
    """What `authenticate` reads of a key: its row and its account's `disabled`."""

    id: str
    account_id: str
    secret_hash: str
    scopes: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    disabled: bool
    first: bool = True  # the round's first request with this key: the one that may touch it


async def _find_keys(held: Held, key_ids: Sequence[str]) -> list[_KeyRow | None]:
    """The rows of `key_ids` (None: no such key), in one read: a round of lookups."""
    wanted = sorted(set(key_ids))
    one = len(wanted) == 1  # a lone lookup (a quiet moment): by `id =`, else `id IN (...)`
    async with held.session() as session:
        rows = (
            await session.execute(_keys_query(one), {"ids": wanted[0] if one else wanted})
        ).all()
    found = {
        row[0]: _KeyRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]))
        for row in rows
    }
    answers: list[_KeyRow | None] = []
    for key_id in key_ids:
        row = found.get(key_id)
        if row is not None and row.first:
            found[key_id] = msgspec.structs.replace(row, first=False)
        answers.append(row)
    return answers


@functools.cache
def _keys_query(one: bool) -> Select[Any]:
    keys = cast(Table, ApiKeyRow.__table__)
    accounts = cast(Table, AccountRow.__table__)
    return (
        select(
            keys.c.id,
            keys.c.account_id,
            keys.c.secret_hash,
            keys.c.scopes,
            keys.c.expires_at,
            keys.c.revoked_at,
            keys.c.last_used_at,
            accounts.c.disabled,
        )
        .join(accounts, accounts.c.id == keys.c.account_id)
        .where(
            keys.c.id == bindparam("ids")
            if one
            else keys.c.id.in_(bindparam("ids", expanding=True))
        )
    )


# each database's coalesced key lookups (services/coalesce.py): the requests of one moment
# read their keys in one statement; each lookup is a read made after its request came
_LOOKUPS = PerDatabase(_find_keys, read=True)


async def _touch(database: Database, key_id: str, now: datetime) -> None:
    """Record a use, unless another request (any replica) did within the last minute."""
    statement = (
        update(ApiKeyRow)
        .where(
            ApiKeyRow.id == key_id,
            or_(
                ApiKeyRow.last_used_at.is_(None), ApiKeyRow.last_used_at <= now - rules.TOUCH_EVERY
            ),
        )
        .values(last_used_at=now)
    )
    async with database.unit_of_work(write=True) as session:
        await session.execute(statement)
