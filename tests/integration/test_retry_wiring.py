"""build_deps builds one RetryPolicy and hands it to both adapters that retry: the S3
storage and the SQL job repository (on PostgreSQL; the embedded SQLite file has no server
to lose). Nothing is sent to S3: the storage connects on first use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailvet.adapters.db import migrate
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.adapters.retry import RetryPolicy
from mailvet.adapters.storage.s3 import S3Storage
from mailvet.bootstrap import build_deps
from mailvet.settings import Settings, load_settings
from tests.pg import scratch_database, url_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with scratch_database("mailvet_retry") as name:
        migrate.upgrade(url_of(name))
        yield url_of(name)


def settings(tmp_path: Path, database_url: str) -> Settings:
    env = {
        "MAILVET_DATA_DIR": str(tmp_path),
        "MAILVET_DATABASE_URL": database_url,
        "MAILVET_STORAGE": "s3",
        "MAILVET_S3_RETRY_FOR": "42",
    }
    return load_settings(env)


async def test_storage_and_repository_share_the_one_policy(
    tmp_path: Path, database_url: str
) -> None:
    deps = await build_deps(settings(tmp_path, database_url), syntax_pool=None)
    try:
        assert isinstance(deps.jobs, SqlJobRepository)
        assert isinstance(deps.storage, S3Storage)
        assert deps.jobs.retry is deps.storage.retry
        assert deps.jobs.retry == RetryPolicy(retry_for=42.0)
    finally:
        await deps.close()


async def test_a_policy_given_to_build_deps_is_the_one_used(
    tmp_path: Path, database_url: str
) -> None:
    given = RetryPolicy(retry_for=1.0, max_attempts=2)
    deps = await build_deps(settings(tmp_path, database_url), syntax_pool=None, retry=given)
    try:
        assert isinstance(deps.jobs, SqlJobRepository) and deps.jobs.retry is given
        assert isinstance(deps.storage, S3Storage) and deps.storage.retry is given
    finally:
        await deps.close()
