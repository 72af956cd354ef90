"""SQLAlchemy engine and sessions for a database URL.

Used by the SQL job repository (PostgreSQL: the shared services) and by the migrations
(either database). The application's embedded SQLite file is read and written through the
standard library instead (adapters/db/sqlite.py); SQLite URLs reach this module for
migrations and for tests that run the SQL repository on SQLite.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from mailvet.adapters.db.schema import metadata
from mailvet.settings import SettingsError

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

# the databases mailvet runs on (make_database refuses any other)
BACKENDS = ("sqlite", "postgresql")

# Execution option a writer passes so that SQLite starts its transaction with BEGIN IMMEDIATE
# (take the write lock first: a read-then-write transaction cannot fail on lock upgrade).
# Other dialects ignore it.
WRITE_INTENT = {"mailvet_write": True}

SQLITE_BUSY_TIMEOUT_MS = 30_000


async def write_intent(session: AsyncSession) -> None:
    """Begin `session`'s transaction as a writer (WRITE_INTENT: SQLite's BEGIN IMMEDIATE)
    when nothing ran in it yet, so a read-then-write use case cannot fail on upgrading its
    lock. When a statement ran already the transaction has begun as it did (asking again
    would only warn)."""
    transaction = session.sync_session.get_transaction()
    if transaction is not None and getattr(transaction, "_connections", None):
        return
    await session.connection(execution_options=WRITE_INTENT)


def dialect_insert(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """INSERT into `table` in the session's dialect, which has `on_conflict_do_nothing` and
    `on_conflict_do_update` (idempotent writes keyed by a unique column)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def rowcount(result: object) -> int:
    """The rows an UPDATE or DELETE matched (0 when the driver does not say)."""
    count = getattr(result, "rowcount", 0)
    return int(count) if isinstance(count, int) else 0


@dataclass(frozen=True)
class Database:
    engine: AsyncEngine
    session_maker: async_sessionmaker[AsyncSession]

    async def create_all(self) -> None:
        """Create the tables of `models.metadata` that do not exist yet, without Alembic (no
        version table). For tests; the application builds its schema with the migrations."""
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def dispose(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def unit_of_work(self, *, write: bool = False) -> AsyncIterator[AsyncSession]:
        """One transaction, committed when the block ends and rolled back if it raises;
        `write=True` begins it as a writer (`write_intent`: SQLite's BEGIN IMMEDIATE), for a
        use case that reads and then writes."""
        async with self.session_maker() as session, session.begin():
            if write:
                await write_intent(session)
            yield session


def make_database(url: str) -> Database:
    """Build (not connect) the engine and session maker for `url`.

    `sqlite+aiosqlite:///path` gets its parent folder created, WAL, a busy timeout, foreign
    keys and real transactions (BEGIN IMMEDIATE for writers, see WRITE_INTENT);
    `postgresql+psycopg://...` gets a pool that tests each connection before use.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() not in BACKENDS:
        raise SettingsError(
            "MAILVET_DATABASE_URL: mailvet runs on SQLite (sqlite+aiosqlite:///path) or"
            f" PostgreSQL (postgresql+psycopg://...), not {parsed.get_backend_name()}"
        )
    sqlite = parsed.get_backend_name() == "sqlite"
    # a server restart leaves dead connections in the pool: test each one before use
    engine = create_async_engine(url, pool_pre_ping=not sqlite)
    if sqlite:
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        _tune_sqlite(engine)
    session_maker = async_sessionmaker(engine, expire_on_commit=False)
    return Database(engine=engine, session_maker=session_maker)


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver would BEGIN lazily and not before a SELECT; SQLAlchemy begins instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: no fsync per commit, still consistent after a crash (progress rows are
        # re-derivable; a power cut may lose the last commits, never corrupt the file)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("mailvet_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
