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
