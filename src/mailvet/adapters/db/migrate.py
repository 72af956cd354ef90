"""Schema migrations of the job database (Alembic), callable from sync code such as the CLI.

The URL is the application's own async URL (`sqlite+aiosqlite:///...`,
`postgresql+psycopg://...`). Migrations run on the engine `make_database` builds, so SQLite
gets the same setup as the application (parent folder created, WAL, busy timeout, foreign
keys); Alembic gets the sync face of one async connection through `run_sync`. No driver
translation is needed.

The whole upgrade (or downgrade) is one transaction, taken as a writer first: on SQLite
`BEGIN IMMEDIATE`, on PostgreSQL a transaction-level advisory lock. Two processes upgrading at
once therefore run one after the other, and the second finds nothing to do. Both databases have
transactional DDL, so a failing revision leaves the schema as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from mailvet.adapters.db.database import WRITE_INTENT, make_database

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"

# Key of the PostgreSQL advisory lock that serialises migrations (any constant bigint).
_PG_LOCK_KEY = 0x6D61_696C_7665_74  # "mailvet"

_Action = Callable[[Config], None]


def alembic_config(connection: Connection | None = None) -> Config:
    """A file-less Alembic config for our script location, bound to `connection` if given."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision`; nothing to do is not an error.

    Runs its own event loop: from async code, use `upgrade_async`.
    """
    asyncio.run(_migrate(url, lambda config: command.upgrade(config, revision)))


async def upgrade_async(url: str, revision: str = "head") -> None:
    """`upgrade` for code already inside an event loop (runs in a worker thread)."""
    await asyncio.to_thread(upgrade, url, revision)


def downgrade(url: str, revision: str) -> None:
    """Take the database at `url` down to `revision` (`"base"`: drop every table)."""
    asyncio.run(_migrate(url, lambda config: command.downgrade(config, revision)))


def current(url: str) -> str | None:
    """The revision the database at `url` is at; None if never migrated (or no such file)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).exists():
            return None  # do not create the file just to look at it
    return asyncio.run(_current(url))


def head() -> str | None:
    """The newest revision shipped with this version of mailvet."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _migrate(url: str, action: _Action) -> None:
    db = make_database(url)
    try:
        async with db.engine.connect() as conn:
            await conn.execution_options(**WRITE_INTENT)  # SQLite: BEGIN IMMEDIATE
            async with conn.begin():
                await conn.run_sync(_run_locked, action)
    finally:
        await db.dispose()


def _run_locked(connection: Connection, action: _Action) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    action(alembic_config(connection))


async def _current(url: str) -> str | None:
    db = make_database(url)
    try:
        async with db.engine.connect() as conn:
            return await conn.run_sync(
                lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
            )
    finally:
        await db.dispose()
