"""Alembic environment for the job database.

`mailvet.adapters.db.migrate` is the normal entry point: it opens the connection (async engine,
one transaction, lock taken) and hands its sync face over in `config.attributes["connection"]`.
Without one (the plain `alembic` CLI with `sqlalchemy.url` set), this file opens its own async
engine and runs the migrations through `run_sync`; `--sql` renders them offline.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, pool
from sqlalchemy.ext.asyncio import create_async_engine

from mailvet.adapters.db.schema import metadata

config = context.config


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_on_new_engine(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        run_migrations(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url set")
    asyncio.run(run_migrations_on_new_engine(url))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
