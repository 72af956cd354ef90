"""The service tests' database: a new SQLite file migrated as the embedded default is (the
migrated schema, not create_all), one per test. A module that also runs on PostgreSQL
(test_accounts.py) defines its own `db`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailvet.adapters.db import migrate
from mailvet.adapters.db.database import Database
from tests.pg import opened


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path}/mailvet.db"
    await migrate.upgrade_async(url)
    async with opened(url) as database:
        yield database
