"""Shared rate-limit counters: one row per key in `rate_counters`, counted atomically.

Why the database and not Redis: the web replicas already share the database (SQLite on the
embedded default, PostgreSQL in distributed mode); Redis would be one more service to run,
back up and start in CI, and the embedded default has none. One hit is one statement,
`INSERT ... ON CONFLICT (key) DO UPDATE ... RETURNING count`, atomic on both databases (on
PostgreSQL the row lock serialises concurrent hits of one key; SQLite serialises writers),
so two replicas never both see the last free slot. Fixed windows (domain/throttle.py): the
row keeps the start of its window, and the first hit of a new window starts the count at 1.

`hit` and `reset` take the caller's unit of work and do not commit. A named rule is
a `Limit` (prefix, limit, window): `await LOGIN_FAILURES.hit(session, subject, now)`; in its
own transaction from web code, `web.throttle.count(context, rule, subject)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, delete
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.database import dialect_insert, rowcount
from mailvet.adapters.db.session_models import COUNTER_KEY_LENGTH, RateCounterRow
from mailvet.domain.throttle import Throttle, judge, window_start

__all__ = ["Limit", "Throttle", "hit", "purge_stale", "reset"]


@dataclass(frozen=True)
class Limit:
    """A named throttle: at most `limit` hits per `window_seconds` per subject, counted
    under the key `prefix:subject` (the prefix alone for an empty subject; cut to
    COUNTER_KEY_LENGTH characters)."""

    prefix: str
    limit: int
    window_seconds: int

    def key(self, subject: str) -> str:
        return (f"{self.prefix}:{subject}" if subject else self.prefix)[:COUNTER_KEY_LENGTH]

    async def hit(self, session: AsyncSession, subject: str, now: datetime) -> Throttle:
        return await hit(
            session,
            self.key(subject),
            limit=self.limit,
            window_seconds=self.window_seconds,
            now=now,
        )

    async def reset(self, session: AsyncSession, subject: str) -> None:
        await reset(session, self.key(subject))


async def hit(
    session: AsyncSession, key: str, *, limit: int, window_seconds: int, now: datetime
) -> Throttle:
    """Count one hit of `key` in the window holding `now` and say whether it is within
    `limit`. Refused hits are counted too (a client hammering a closed door stays shut out
    until the window ends, not for one request)."""
    _check_key(key)
    start = window_start(now, window_seconds)
    row = RateCounterRow
    values = dialect_insert(session, row).values(key=key, window_start=start, count=1)
    statement = values.on_conflict_do_update(
        index_elements=[row.key],
        set_={
            # every SET reads the row as it was: a new window restarts at 1
            "count": case(
                (row.window_start == values.excluded.window_start, row.count + 1), else_=1
            ),
            "window_start": values.excluded.window_start,
        },
    ).returning(row.count)
    count = (await session.execute(statement)).scalar_one()
    return judge(count, limit, now, window_seconds)


async def reset(session: AsyncSession, key: str) -> None:
    """Forget the hits of `key` (a successful sign-in clears its failures)."""
    await session.execute(delete(RateCounterRow).where(RateCounterRow.key == key))


def _check_key(key: str) -> None:
    if not key or len(key) > COUNTER_KEY_LENGTH:
        raise ValueError(f"a counter key is 1 to {COUNTER_KEY_LENGTH} characters")


async def purge_stale(session: AsyncSession, *, now: datetime, older_than: int = 2 * 86400) -> int:
    """Delete counters whose window began more than `older_than` seconds ago (longer than
    any window in use: a day); returns how many. A periodic task calls it."""
    cutoff = int(now.timestamp()) - older_than
    result = await session.execute(
        delete(RateCounterRow)
        .where(RateCounterRow.window_start < cutoff)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)
