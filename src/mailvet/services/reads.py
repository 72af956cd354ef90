"""Reads outside a transaction: `read_session(database)` is an AsyncSession whose statements
run on a connection of their own in autocommit on PostgreSQL, so a one-statement read costs
one round trip instead of three (no BEGIN, no ROLLBACK). For single statements whose answer
needs no snapshot shared with another (the API's coalesced key and account lookups); SQLite
(its own file, no network) reads as it always does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.database import Database


@contextlib.asynccontextmanager
async def read_session(database: Database) -> AsyncIterator[AsyncSession]:
    if database.engine.dialect.name != "postgresql":
        async with database.session_maker() as session:
            yield session
        return
    async with database.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        async with AsyncSession(bind=connection, expire_on_commit=False) as session:
            yield session
