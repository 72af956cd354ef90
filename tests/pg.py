"""A scratch PostgreSQL database for tests (127.0.0.1:5432, trust auth)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """Create a database named `<prefix>_<random>`, yield its name, drop it afterwards.

    If PostgreSQL is not reachable the test is skipped, or fails when
    MAILVET_TEST_SERVICES=required (as `make test` and CI set it)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("MAILVET_TEST_SERVICES") == "required":
            pytest.fail(f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc}")
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc}")
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
