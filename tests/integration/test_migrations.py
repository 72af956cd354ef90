"""Alembic migrations of the job database, on a fresh SQLite file and a fresh PostgreSQL DB."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, delete, inspect, select

from mailvet.adapters.db import migrate
from mailvet.adapters.db.database import make_database
from mailvet.adapters.db.models import JobChunkRow, JobRow
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.adapters.db.schema import metadata
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.domain.verdict import Check
from tests.pg import scratch_database

pytestmark = pytest.mark.integration

PG = "host=127.0.0.1 port=5432 user=postgres dbname={}"
PG_ADMIN = PG.format("postgres")
TABLES = set(metadata.tables)
T = TypeVar("T")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database for this session; yields its name."""
    with scratch_database("mailvet_mig") as name:
        yield name


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a new SQLite file (in a folder that does not exist yet) or the
    session's PostgreSQL database emptied of whatever an earlier test left."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/nested/mailvet.db"
    name = request.getfixturevalue("postgres_database")
    with psycopg.connect(PG.format(name), autocommit=True) as conn:
        tables = ", ".join([*TABLES, "alembic_version"])  # every table of every area
        conn.execute(f"DROP TABLE IF EXISTS {tables} CASCADE")
        conn.execute("DROP FUNCTION IF EXISTS ledger_entries_append_only() CASCADE")  # 0009's
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def on_connection(url: str, fn: Callable[[Connection], T]) -> T:
    """Run `fn` on the sync face of an async connection to `url`."""

    async def run() -> T:
        db = make_database(url)
        try:
            async with db.engine.connect() as conn:
                return await conn.run_sync(fn)
        finally:
            await db.dispose()

    return asyncio.run(run())


def table_names(url: str) -> set[str]:
    return on_connection(url, lambda conn: set(inspect(conn).get_table_names()))


def schema_snapshot(url: str) -> dict[str, Any]:
    def snapshot(conn: Connection) -> dict[str, Any]:
        insp = inspect(conn)
        return {
            table: {
                "columns": [
                    (column["name"], str(column["type"]), column["nullable"])
                    for column in insp.get_columns(table)
                ],
                "indexes": sorted(
                    (index["name"], tuple(index["column_names"]))
                    for index in insp.get_indexes(table)
                ),
                "pk": insp.get_pk_constraint(table)["constrained_columns"],
                "fks": insp.get_foreign_keys(table),
            }
            for table in sorted(insp.get_table_names())
        }

    return on_connection(url, snapshot)


def schema_differences(url: str) -> list[Any]:
    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))

    return on_connection(url, compare)


def test_upgrade_creates_the_tables(url: str) -> None:
    migrate.upgrade(url)

    snapshot = schema_snapshot(url)
    assert set(snapshot) == TABLES | {"alembic_version"}
    assert snapshot["jobs"]["pk"] == ["id"]
    assert snapshot["jobs"]["indexes"] == [
        ("ix_jobs_created_at", ("created_at",)),
        ("ix_jobs_owner_created_at", ("owner", "created_at")),
    ]
    assert snapshot["job_chunks"]["pk"] == ["job_id", "chunk_id"]
    [fk] = snapshot["job_chunks"]["fks"]
    assert (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"]) == (
        ["job_id"],
        "jobs",
        ["id"],
    )
    assert fk["options"].get("ondelete") == "CASCADE"
    # an API key is found by its public id (the primary key) and goes with its account
    assert snapshot["api_keys"]["pk"] == ["id"]
    [key_fk] = snapshot["api_keys"]["fks"]
    assert (key_fk["referred_table"], key_fk["options"].get("ondelete")) == ("accounts", "CASCADE")
    # webhooks (0010): the deliveries and endpoints go with their account; a delivery has no
    # foreign key to its job (its record outlives a purged job), nor a callback (stored
    # before its job is)
    assert snapshot["job_callbacks"]["fks"] == []
    for table, parent in (("webhook_endpoints", "accounts"), ("webhook_deliveries", "accounts")):
        [hook_fk] = snapshot[table]["fks"]
        assert (hook_fk["referred_table"], hook_fk["options"].get("ondelete")) == (
            parent,
            "CASCADE",
        )
    assert ("ix_webhook_deliveries_next_attempt_at", ("next_attempt_at",)) in snapshot[
        "webhook_deliveries"
    ]["indexes"]


def test_migrated_schema_matches_the_models(url: str) -> None:
    migrate.upgrade(url)

    assert schema_differences(url) == []


def test_upgrading_again_is_a_no_op(url: str) -> None:
    migrate.upgrade(url)
    before = schema_snapshot(url)

    migrate.upgrade(url)
    migrate.upgrade(url, "head")

    assert schema_snapshot(url) == before
    assert migrate.current(url) == migrate.head()


def test_current_reports_the_head(url: str) -> None:
    assert migrate.current(url) is None
    head = migrate.head()
    assert head == "0011"

    migrate.upgrade(url)

    assert migrate.current(url) == head


def test_current_does_not_create_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"

    assert migrate.current(f"sqlite+aiosqlite:///{path}") is None
    assert not path.exists()


def test_downgrade_to_base_drops_the_tables(url: str) -> None:
    migrate.upgrade(url)

    migrate.downgrade(url, "base")

    assert table_names(url) & TABLES == set()
    assert migrate.current(url) is None
    migrate.upgrade(url)  # and back up again
    assert table_names(url) >= TABLES


async def test_concurrent_upgrades_run_one_after_the_other(url: str) -> None:
    await asyncio.gather(*(migrate.upgrade_async(url) for _ in range(3)))

    assert await asyncio.to_thread(migrate.current, url) == migrate.head()


async def test_repository_works_on_a_migrated_database(url: str) -> None:
    await migrate.upgrade_async(url)
    db = make_database(url)
    try:
        repo = SqlJobRepository(db)
        job = Job(
            id=uuid.uuid4().hex,
            file=FileInfo(filename="list.xlsx", email_column="E-mail", checks=Check.DNS),
            owner="user-1",
            layout=b"\x81\xa3sep\xa1,",
        )
        await repo.add(job)
        await repo.set_counts(job.id, rows_total=10, chunks_total=2, layout=job.layout)
        await repo.set_status(job.id, JobStatus.FILE_ACCEPTED)

        assert await repo.record_chunk(job.id, 0, rows=6) is True
        assert await repo.record_chunk(job.id, 0, rows=6) is False

        got = await repo.get(job.id)
        assert (got.file, got.owner, got.layout, got.status) == (
            job.file,
            "user-1",
            job.layout,
            JobStatus.FILE_ACCEPTED,
        )
        assert (got.rows_total, got.rows_done, got.chunks_total) == (10, 6, 2)
        assert got.created_at is not None and got.created_at.tzinfo is not None
        async with db.session_maker() as session:  # one chunk row on record
            assert len((await session.execute(select(JobChunkRow))).all()) == 1

        # ON DELETE CASCADE made it into the database
        async with db.session_maker() as session, session.begin():
            await session.execute(delete(JobRow).where(JobRow.id == job.id))
        async with db.session_maker() as session:
            assert (await session.execute(select(JobChunkRow))).first() is None
    finally:
        await db.dispose()
