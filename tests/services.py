"""Are the test services up? One check each for PostgreSQL and RabbitMQ (the broker of
MAILVET_TEST_AMQP_URL, the one the tests then use), and one rule for a missing service:
the test is skipped, or fails when MAILVET_TEST_SERVICES=required (as `make test` and CI
set it)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import psycopg
import pytest

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
AMQP_URL = os.environ.get("MAILVET_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def postgres_problem() -> str | None:
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc}"
    return None


def rabbit_problem(url: str = AMQP_URL) -> str | None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return f"RabbitMQ is not reachable at {host}:{port}: {exc}"
    return None


def require(*problems: str | None) -> None:
    """Skip the test for the first problem found, or fail under MAILVET_TEST_SERVICES=required."""
    for problem in problems:
        if problem is not None:
            if os.environ.get("MAILVET_TEST_SERVICES") == "required":
                pytest.fail(problem)
            pytest.skip(problem)
