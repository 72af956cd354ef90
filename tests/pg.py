"""A scratch PostgreSQL database for tests (127.0.0.1:5432, trust auth), empty or migrated,
and a Database handle on it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager

import psycopg
from psycopg import sql

from mailvet.adapters.db import migrate
from mailvet.adapters.db.database import Database, make_database
from tests.services import PG_ADMIN, require

__all__ = ["PG_ADMIN", "migrated_database", "opened", "scratch_database", "url_of"]


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """Create a database named `<prefix>_<random>`, yield its name, drop it afterwards.

    If PostgreSQL is not reachable the test is skipped, or fails when
    MAILVET_TEST_SERVICES=required (tests/services.py `require`)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        require(f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc}")
        raise
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:  # a new connection: a test may have restarted the server meanwhile
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            admin.execute(drop)


def url_of(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@contextmanager
def migrated_database(prefix: str) -> Iterator[str]:
    """`scratch_database`, migrated to the head; yields its URL. The migration runs in a
    thread of its own (Alembic's env runs an event loop), so a sync or an async fixture
    can use it alike."""
    with scratch_database(prefix) as name:
        url = url_of(name)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(migrate.upgrade, url).result()
        yield url


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Database]:
    """A Database on `url`, disposed of afterwards."""
    database = make_database(url)
    try:
        yield database
    finally:
        await database.dispose()
