"""The schema script a new embedded SQLite file is made from (adapters/db/sqlite_schema.py)
is what the Alembic migrations build, and is used only while it is of this checkout's
migrations.

When test_the_script_is_of_these_migrations or test_the_script_is_the_dump_of_a_migrated_file
fails, a migration (or migrations/env.py) changed: write the script again with

    .venv/bin/python -m mailvet.adapters.db.sqlite_schema
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from mailvet.adapters.db import migrate, sqlite_schema
from mailvet.adapters.db.sqlite import SqliteJobRepository
from mailvet.bootstrap import prepare_schema
from mailvet.domain.job import FileInfo, Job
from mailvet.domain.verdict import Check
from tests.unit.test_startup import HEAVY, imported, run_fresh

pytestmark = pytest.mark.unit

REGENERATE = "write the script again: .venv/bin/python -m mailvet.adapters.db.sqlite_schema"


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file the Alembic migrations built (once for the module: it takes a second)."""
    path = tmp_path_factory.mktemp("migrated") / "mailvet.db"
    sqlite_schema.build_with_migrations(path)
    return path


def snapshot(path: Path) -> dict[str, Any]:
    """Everything about a file that the application can see: schema objects with their SQL,
    every table's columns, keys and indexes, every row, the persistent pragmas."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        objects = sorted(
            conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        )
        tables = [name for kind, name, _, _ in objects if kind == "table"]
        described = {
            table: {
                pragma: conn.execute(f'PRAGMA {pragma}("{table}")').fetchall()
                for pragma in ("table_info", "foreign_key_list", "index_list")
            }
            for table in tables
        }
        rows = {
            table: sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall())  # noqa: S608
            for table in tables
        }
        pragmas = {
            name: conn.execute(f"PRAGMA {name}").fetchone()
            for name in ("journal_mode", "user_version", "application_id", "auto_vacuum")
        }
    return {"objects": objects, "tables": described, "rows": rows, "pragmas": pragmas}


def test_the_script_is_of_these_migrations() -> None:
    head, digest = sqlite_schema.script_header(sqlite_schema.SCRIPT.read_text(encoding="utf-8"))
    assert head == migrate.HEAD, REGENERATE
    assert digest == sqlite_schema.migrations_digest(), REGENERATE
    assert sqlite_schema.current_script() is not None


def test_the_script_is_the_dump_of_a_migrated_file(migrated: Path) -> None:
    expected = sqlite_schema.render(migrated)
    assert sqlite_schema.SCRIPT.read_text(encoding="utf-8") == expected, REGENERATE


def test_a_file_made_from_the_script_is_the_migrated_file(migrated: Path, tmp_path: Path) -> None:
    path = tmp_path / "new" / "mailvet.db"  # its folder does not exist yet
    assert sqlite_schema.create_fresh(url_of(path))
    assert snapshot(path) == snapshot(migrated)
    assert snapshot(path)["pragmas"]["journal_mode"] == ("wal",)
    assert migrate.sqlite_is_current(url_of(path))
    assert migrate.current(url_of(path)) == migrate.HEAD  # Alembic agrees
    assert sorted(p.name for p in path.parent.iterdir()) == ["mailvet.db"]  # no temp left


def test_the_migrations_take_a_script_made_file_as_their_own(tmp_path: Path) -> None:
    path = tmp_path / "mailvet.db"
    assert sqlite_schema.create_fresh(url_of(path))
    migrate.upgrade(url_of(path))  # nothing to do
    migrate.downgrade(url_of(path), "base")
    assert migrate.current(url_of(path)) is None


async def test_the_job_repository_works_on_a_script_made_file(tmp_path: Path) -> None:
    url = url_of(tmp_path / "mailvet.db")
    assert sqlite_schema.create_fresh(url)
    repo = SqliteJobRepository.open_current(url, migrate.HEAD)
    assert repo is not None
    try:
        job = Job(id="j" * 32, file=FileInfo(filename="a.csv", checks=Check.SYNTAX))
        await repo.add(job)
        assert (await repo.get(job.id)).file.filename == "a.csv"
    finally:
        await repo.close()


def test_an_existing_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "mailvet.db"
    path.write_bytes(b"")
    assert not sqlite_schema.create_fresh(url_of(path))
    assert path.read_bytes() == b""


@pytest.mark.parametrize("line", ["-- head: 0000", "-- migrations: 0123abcd"])
def test_a_script_of_other_migrations_is_not_used(tmp_path: Path, line: str) -> None:
    text = sqlite_schema.SCRIPT.read_text(encoding="utf-8")
    prefix = line.split(":")[0] + ":"
    stale = "\n".join(
        line if existing.startswith(prefix) else existing for existing in text.splitlines()
    )
    assert stale != text
    script = tmp_path / "stale.sql"
    script.write_text(stale, encoding="utf-8")
    path = tmp_path / "data" / "mailvet.db"
    assert not sqlite_schema.create_fresh(url_of(path), script=script)
    assert not path.exists()


def test_processes_racing_for_a_new_file_make_it_once(tmp_path: Path) -> None:
    url = url_of(tmp_path / "mailvet.db")
    start = threading.Barrier(4)
    made: list[bool] = []

    def create() -> None:
        start.wait()
        made.append(sqlite_schema.create_fresh(url))

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made.count(True) == 1
    assert migrate.sqlite_is_current(url)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mailvet.db"]


async def test_prepare_schema_makes_a_new_file_from_the_script(
    migrated: Path, tmp_path: Path
) -> None:
    path = tmp_path / "mailvet.db"
    await prepare_schema(url_of(path))
    assert snapshot(path) == snapshot(migrated)


def test_a_first_validate_runs_no_alembic(tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text("email\nann@example.com\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    code, modules, _ = run_fresh(
        ["validate", str(listing), "-o", str(out), "--checks", "syntax"],
        env={"MAILVET_DATA_DIR": str(tmp_path / "data")},
    )
    assert code == 0
    assert out.is_file()
    assert migrate.sqlite_is_current(url_of(tmp_path / "data" / "mailvet.db"))
    assert imported(modules, HEAVY) == []
