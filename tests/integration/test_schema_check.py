"""The start-up schema check on PostgreSQL: migrate.current reads alembic_version, no Alembic."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from mailvet.adapters.db import migrate
from tests.pg import scratch_database, url_of

pytestmark = pytest.mark.integration

PG = "host=127.0.0.1 port=5432 user=postgres dbname={}"


@pytest.fixture
def database() -> Iterator[str]:
    with scratch_database("mailvet_check") as name:
        yield name


def test_an_empty_database_is_at_no_revision(database: str) -> None:
    assert migrate.current(url_of(database)) is None


def test_a_migrated_database_is_at_head(database: str) -> None:
    migrate.upgrade(url_of(database))
    assert migrate.current(url_of(database)) == migrate.HEAD == migrate.head()


def test_an_older_revision_is_reported_as_it_is(database: str) -> None:
    migrate.upgrade(url_of(database), "0003")
    assert migrate.current(url_of(database)) == "0003"


def test_several_heads_are_refused(database: str) -> None:
    with psycopg.connect(PG.format(database), autocommit=True) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('0006'), ('0007')")
    with pytest.raises(RuntimeError, match="several schema heads"):
        migrate.current(url_of(database))


def test_the_check_imports_no_alembic(database: str) -> None:
    migrate.upgrade(url_of(database))
    probe = (
        "import sys\n"
        "from mailvet.adapters.db import migrate\n"
        f"print(migrate.current({url_of(database)!r}), 'alembic' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == [migrate.HEAD, "False"]
