"""Rate limits: fixed windows, the shared counters, and the app-wide per-IP limit counted
once across two web app instances over one database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.session_models import RateCounterRow
from mailvet.domain.throttle import Rate, judge, parse_rates, seconds_left, window_start
from mailvet.services import throttle
from mailvet.web.app import create_app
from mailvet.web.context import build_web_context
from tests.web.shell_helpers import (
    Clock,
    cheap_hasher,
    client,
    counter_total,
    csrf_token,
    look,
    shell,
)

pytestmark = pytest.mark.pipeline

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.unit
def test_rates_are_parsed_from_the_setting() -> None:
    assert parse_rates("200/minute,400/hour") == (Rate(200, 60), Rate(400, 3600))
    assert parse_rates(" 5 / day , 1/seconds ") == (Rate(5, 86400), Rate(1, 1))
    assert parse_rates("") == ()
    for bad in ("200", "0/minute", "10/fortnight", "-1/hour", "a/minute"):
        with pytest.raises(ValueError, match="not a rate"):
            parse_rates(bad)


@pytest.mark.unit
def test_windows_are_aligned_and_retry_after_counts_to_their_end() -> None:
    at = T0 + timedelta(seconds=42, milliseconds=300)
    assert window_start(at, 60) == int(T0.timestamp())
    assert seconds_left(at, 60) == 18  # 17.7 s, rounded up
    assert seconds_left(T0, 60) == 60
    assert judge(3, 3, at, 60).allowed
    refused = judge(4, 3, at, 60)
    assert not refused.allowed and refused.retry_after == 18


async def test_hits_count_per_key_and_window_and_reset_clears(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, look(s.url) as database:
        async with database.session_maker() as session, session.begin():
            answers = [
                await throttle.hit(session, "k", limit=2, window_seconds=60, now=T0)
                for _ in range(3)
            ]
            other = await throttle.hit(session, "other", limit=2, window_seconds=60, now=T0)
        assert [a.allowed for a in answers] == [True, True, False]
        assert [a.count for a in answers] == [1, 2, 3]
        assert answers[2].retry_after == 60
        assert other.allowed and other.count == 1
        async with database.session_maker() as session, session.begin():
            full = await stored_count(session, "k")
            later = T0 + timedelta(seconds=60)
            next_window = await throttle.hit(session, "k", limit=2, window_seconds=60, now=later)
            restarted = await stored_count(session, "k")
        assert full == (3, int(T0.timestamp()))  # the refused hit is counted too
        assert next_window.allowed and next_window.count == 1
        assert restarted == (1, int(later.timestamp()))
        async with database.session_maker() as session, session.begin():
            await throttle.reset(session, "k")
            after_reset = await stored_count(session, "k")
        assert after_reset is None


async def stored_count(session: AsyncSession, key: str) -> tuple[int, int] | None:
    """The counter row of `key` as stored: (count, window start)."""
    found = (
        await session.execute(
            select(RateCounterRow.count, RateCounterRow.window_start).where(
                RateCounterRow.key == key
            )
        )
    ).one_or_none()
    return None if found is None else (found[0], found[1])


async def test_two_app_instances_share_the_per_ip_limit(tmp_path: Path) -> None:
    """Two web apps (as two replicas would be) over one database file: a client alternating
    between them gets the limit once, not twice."""
    env = {"MAILVET_WEB_RATE_LIMIT": "4/minute,100/hour"}
    clock = Clock(T0 + timedelta(seconds=10))
    async with shell(tmp_path, env, clock=clock) as first:
        second_web = await build_web_context(
            first.web.settings, hasher=cheap_hasher(), clock=clock
        )  # its own engine and pool on the same file
        try:
            second = create_app(first.deps, web=second_web)
            async with client(first.app) as a, client(second) as b:
                statuses = []
                for c in (a, b, a, b, a, b):
                    statuses.append((await c.get("/pricing")).status_code)
                assert statuses == [200, 200, 200, 200, 429, 429]
                refused = await b.get("/pricing", headers={"accept": "text/html"})
                assert refused.status_code == 429
                assert refused.headers["retry-after"] == "50"
                assert refused.headers["content-type"].startswith("text/html")
                assert "Too many requests" in refused.text
                api = await a.get("/api/t/things/x")
                assert api.status_code == 429
                assert api.json() == {"error": "too many requests: try again later"}
                assert api.headers["retry-after"] == "50"
                # /static and /health are not counted
                assert (await a.get("/static/app.css")).status_code == 200
                assert (await b.get("/health")).status_code == 200
                clock.advance(seconds=50)  # the next minute
                assert (await b.get("/pricing")).status_code == 200
        finally:
            await second_web.close()
    # refusals count too: the hour's row holds all 9 requests, the minute's restarted at 1
    assert await counter_total(first.url) == 9 + 1


async def test_the_hourly_rate_refuses_with_the_longer_wait(tmp_path: Path) -> None:
    env = {"MAILVET_WEB_RATE_LIMIT": "100/minute,3/hour"}
    clock = Clock(T0 + timedelta(minutes=30))
    async with shell(tmp_path, env, clock=clock) as s, client(s.app) as c:
        for _ in range(3):
            assert (await c.get("/docs")).status_code == 200
        refused = await c.get("/docs")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == str(30 * 60)


async def test_no_limit_when_the_setting_is_empty(tmp_path: Path) -> None:
    async with shell(tmp_path, {"MAILVET_WEB_RATE_LIMIT": ""}) as s, client(s.app) as c:
        for _ in range(5):
            assert (await c.get("/pricing")).status_code == 200
    assert await counter_total(s.url) == 0


async def test_per_form_limits_and_the_page_limit_are_separate_counters(tmp_path: Path) -> None:
    env = {"MAILVET_WEB_RATE_LIMIT": "50/minute"}
    async with shell(tmp_path, env) as s, client(s.app) as c:
        token = await csrf_token(c)
        for _ in range(5):
            answer = await c.post("/demo", data={"email": "a@example.com", "_csrf_token": token})
            assert answer.status_code == 200
        assert (await c.get("/pricing")).status_code == 200
