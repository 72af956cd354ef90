"""make_database accepts the two databases mailvet runs on and refuses any other with a line
naming the setting (the dialect-specific INSERTs of adapters/db/database.py know only them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailvet.adapters.db.database import make_database
from mailvet.settings import SettingsError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("url", ["mysql+aiomysql://u@h/db", "oracle+oracledb://u@h/db"])
def test_another_database_is_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(SettingsError, match="MAILVET_DATABASE_URL: mailvet runs on SQLite"):
        make_database(url)


async def test_sqlite_and_postgresql_are_built(tmp_path: Path) -> None:
    for url in (f"sqlite+aiosqlite:///{tmp_path}/x.db", "postgresql+psycopg://u@127.0.0.1/db"):
        database = make_database(url)
        assert database.engine.dialect.name in {"sqlite", "postgresql"}
        await database.dispose()


async def test_a_unit_of_work_commits_or_rolls_back_and_begins_as_a_writer(tmp_path: Path) -> None:
    from sqlalchemy import text

    database = make_database(f"sqlite+aiosqlite:///{tmp_path}/uow.db")
    try:
        async with database.unit_of_work() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
        with pytest.raises(RuntimeError):
            async with database.unit_of_work(write=True) as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))
                raise RuntimeError("undone")
        async with database.unit_of_work(write=True) as session:
            # a writer from its first statement: another writer's BEGIN IMMEDIATE would wait
            assert session.in_transaction()
            await session.execute(text("INSERT INTO t VALUES (2)"))
        async with database.unit_of_work() as session:
            assert (await session.execute(text("SELECT x FROM t"))).scalars().all() == [2]
    finally:
        await database.dispose()
