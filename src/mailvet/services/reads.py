"""Connections for the API's coalesced rounds (services/coalesce.py).

`Held(database)` keeps one connection from a round to the next while rounds follow each
other (a busy server), so the pool's check of a connection before use (a round trip) is paid
once a run, not once a round; the Coalescer's `idle` hook gives it back when nothing waits,
and a failed round gives it back too (the next round takes a fresh one). `read=True`: in
autocommit on PostgreSQL, so a one-statement read costs one round trip instead of three (no
BEGIN, no ROLLBACK: for single statements that need no snapshot shared with another; SQLite
reads as it always does); else each round's session is a transaction of its own, begun as
a writer (SQLite's BEGIN IMMEDIATE).

`PerDatabase(run, read=...)`: one Coalescer per database (kept as long as the database is),
whose rounds call `run(held, items)` on that database's Held connection; `.of(database)`.
The key lookups, the account reads and the single checks' charges are three of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mailvet.adapters.db.database import WRITE_INTENT, Database
from mailvet.services.coalesce import Coalescer

T = TypeVar("T")
R = TypeVar("R")


class Held:
    def __init__(self, database: Database, *, read: bool = False) -> None:
        self._database = database
        self._read = read
        # by event loop: a connection belongs to the loop it was made on (Coalescer's lanes)
        self._connections: dict[asyncio.AbstractEventLoop, AsyncConnection] = {}

    async def _connect(self) -> AsyncConnection:
        loop = asyncio.get_running_loop()
        if loop not in self._connections:
            connection = await self._database.engine.connect()
            try:
                if self._read and connection.dialect.name == "postgresql":
                    await connection.execution_options(isolation_level="AUTOCOMMIT")
                elif not self._read:
                    await connection.execution_options(**WRITE_INTENT)
            except BaseException:
                await connection.close()
                raise
            self._connections[loop] = connection
        return self._connections[loop]

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session on the kept connection (a transaction of its own unless `read`)."""
        connection = await self._connect()
        try:
            async with AsyncSession(bind=connection, expire_on_commit=False) as session:
                if self._read:
                    yield session
                else:
                    async with session.begin():
                        yield session
        except BaseException:
            await self.release()  # a broken connection is not kept
            raise

    async def release(self) -> None:
        """Give back the running loop's connection, if it keeps one."""
        connection = self._connections.pop(asyncio.get_running_loop(), None)
        if connection is not None:
            await connection.close()


class PerDatabase(Generic[T, R]):
    """Each database's coalesced rounds of `run` (see the module's docstring), made on first
    use and gone with the database."""

    def __init__(
        self, run: Callable[[Held, Sequence[T]], Awaitable[Sequence[R]]], *, read: bool
    ) -> None:
        self._run = run
        self._read = read
        self._rounds: weakref.WeakKeyDictionary[Database, Coalescer[T, R]] = (
            weakref.WeakKeyDictionary()
        )

    def of(self, database: Database) -> Coalescer[T, R]:
        found = self._rounds.get(database)
        if found is None:
            held = Held(database, read=self._read)
            found = Coalescer(functools.partial(self._run, held), idle=held.release)
            self._rounds[database] = found
        return found
