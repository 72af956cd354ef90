"""The shared counters and sessions on PostgreSQL: concurrent hits never let more than the
limit through, and two web app instances over one database count a client once and share
its session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mailvet.adapters.db import migrate
from mailvet.adapters.db.database import make_database
from mailvet.adapters.db.session_models import RateCounterRow
from mailvet.services import throttle
from mailvet.web.app import create_app
from mailvet.web.context import WebContext, build_web_context
from tests.pg import scratch_database, url_of
from tests.web.shell_helpers import Clock, cheap_hasher, client, csrf_token, session_area, shell

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, 5, tzinfo=UTC)
SECRET = "k" * 48


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with scratch_database("mailvet_shell") as name:
        url = url_of(name)
        migrate.upgrade(url)
        yield url


async def test_concurrent_hits_let_exactly_the_limit_through(pg_url: str) -> None:
    database = make_database(pg_url)
    try:

        async def one() -> bool:
            async with database.session_maker() as session, session.begin():
                answer = await throttle.hit(session, "race", limit=7, window_seconds=60, now=T0)
                await asyncio.sleep(0)  # let the others run inside their transactions
                return answer.allowed

        allowed = await asyncio.gather(*(one() for _ in range(40)))
        assert sum(allowed) == 7
        async with database.session_maker() as session:
            seen = await session.scalar(
                select(RateCounterRow.count).where(RateCounterRow.key == "race")
            )
        assert seen == 40
    finally:
        await database.dispose()


async def test_two_app_instances_on_postgresql_share_limits_and_sessions(
    tmp_path: Path, pg_url: str
) -> None:
    env = {
        "MAILVET_DATABASE_URL": pg_url,
        "MAILVET_SECRET_KEY": SECRET,
        "MAILVET_WEB_RATE_LIMIT": "6/minute",
    }
    clock = Clock(T0)
    async with shell(tmp_path, env, clock=clock) as first:
        other: WebContext = await build_web_context(
            first.web.settings, hasher=cheap_hasher(), clock=clock
        )
        try:
            second = create_app(first.deps, web=other, areas=[session_area()])
            async with client(first.app) as a, client(second) as b:
                token = await csrf_token(a)  # 1
                signed = await a.post("/t/sign-in/" + "c" * 32, headers={"x-csrftoken": token})
                assert signed.status_code == 200  # 2
                b.cookies = a.cookies  # the same browser, sent to the other replica
                assert (await b.get("/t/whoami")).json() == {"account": "c" * 32}  # 3
                assert [(await c.get("/docs")).status_code for c in (a, b, a, b)] == [
                    200,
                    200,
                    200,
                    429,
                ]
                assert (await a.get("/docs")).headers["retry-after"] == "55"
                clock.advance(minutes=1)
                assert (await b.get("/docs")).status_code == 200
        finally:
            await other.close()


async def test_the_window_restarts_on_postgresql(pg_url: str) -> None:
    database = make_database(pg_url)
    try:
        async with database.session_maker() as session, session.begin():
            for _ in range(3):
                await throttle.hit(session, "w", limit=2, window_seconds=60, now=T0)
            fresh = await throttle.hit(
                session, "w", limit=2, window_seconds=60, now=T0 + timedelta(seconds=60)
            )
        assert fresh.allowed and fresh.count == 1
    finally:
        await database.dispose()
