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
import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mailvet.adapters.db.sqlite import sqlite_path

if TYPE_CHECKING:  # SQLAlchemy and Alembic are imported by the functions that use them
    from alembic.config import Config
    from sqlalchemy import Connection

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"

# The newest revision in migrations/versions/, spelt out so that a command can compare the
# database with it without loading Alembic (tests hold it equal to Alembic's own `head()`).
HEAD = "0011"

# Key of the PostgreSQL advisory lock that serialises migrations (any constant bigint).
_PG_LOCK_KEY = 0x6D61_696C_7665_74  # "mailvet"

_Action = Callable[["Config"], None]


def alembic_config(connection: Connection | None = None) -> Config:
    """A file-less Alembic config for our script location, bound to `connection` if given."""
    from alembic.config import Config

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
    from alembic import command

    asyncio.run(_migrate(url, lambda config: command.upgrade(config, revision)))


async def upgrade_async(url: str, revision: str = "head") -> None:
    """`upgrade` for code already inside an event loop (runs in a worker thread)."""
    await asyncio.to_thread(upgrade, url, revision)


def downgrade(url: str, revision: str) -> None:
    """Take the database at `url` down to `revision` (`"base"`: drop every table)."""
    from alembic import command

    asyncio.run(_migrate(url, lambda config: command.downgrade(config, revision)))


def current(url: str) -> str | None:
    """The revision the database at `url` is at; None if never migrated (or no such file).

    On PostgreSQL this is one query on `alembic_version` through psycopg, with no Alembic
    import, engine or event loop: every role and every `users create` checks the schema at
    start-up (bootstrap.prepare_schema), as `sqlite_is_current` does for a SQLite file."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return None  # do not create the file just to look at it
    if url.startswith("postgresql"):
        return _postgres_current(url)
    return asyncio.run(_current(url))


def _postgres_current(url: str) -> str | None:
    import psycopg
    from psycopg.conninfo import make_conninfo
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    params = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
        **{key: str(value) for key, value in parsed.query.items()},
    }
    conninfo = make_conninfo("", **{key: v for key, v in params.items() if v is not None})
    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        except psycopg.errors.UndefinedTable:
            return None  # never migrated
    if len(rows) > 1:  # Alembic's own answer to a branched history
        raise RuntimeError(f"the database has several schema heads: {sorted(r[0] for r in rows)}")
    return str(rows[0][0]) if rows else None


def head() -> str | None:
    """The newest revision shipped with this version of mailvet, as Alembic reads it."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _migrate(url: str, action: _Action) -> None:
    from mailvet.adapters.db.database import WRITE_INTENT, make_database

    db = make_database(url)
    try:
        async with db.engine.connect() as conn:
            await conn.execution_options(**WRITE_INTENT)  # SQLite: BEGIN IMMEDIATE
            async with conn.begin():
                await conn.run_sync(_run_locked, action)
    finally:
        await db.dispose()


def _run_locked(connection: Connection, action: _Action) -> None:
    from sqlalchemy import text

    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    action(alembic_config(connection))


def sqlite_is_current(url: str) -> bool:
    """Is the SQLite file of `url` at HEAD? One stdlib query; False when the file, the
    version table or the revision is missing or different (then migrate as usual)."""
    database = sqlite_path(url)
    if database is None or not database.is_file():
        return False
    try:
        # mode=rw: never create the file just to look at it
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=rw", uri=True)) as conn:
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return False
    return rows == [(HEAD,)]


async def _current(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from mailvet.adapters.db.database import make_database

    db = make_database(url)
    try:
        async with db.engine.connect() as conn:
            return await conn.run_sync(
                lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
            )
    finally:
        await db.dispose()
