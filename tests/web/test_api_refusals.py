"""The limit on refused keys per client IP (services/api_refusals.py, web/api/auth.py): the
keyed API is outside the per-IP page limit, so a client that keeps sending made-up keys is
answered 429 once it has had REFUSALS_PER_IP refusals in a minute, before any lookup, and
may try again in the next minute; accepted requests are not counted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailvet.adapters.db.database import make_database
from mailvet.adapters.db.migrate import upgrade_async
from mailvet.services.api_refusals import REFUSALS_PER_IP, RefusalGate
from mailvet.services.throttle import Limit
from tests.web.test_api_validate import api, problem

pytestmark = pytest.mark.pipeline

LIMIT = REFUSALS_PER_IP.limit
CREDITS = "/api/v1/credits"
BAD = "mv_AAAAAAAAAAAAAAAA_" + "B" * 43


async def test_refused_keys_are_limited_per_ip_and_accepted_ones_not(tmp_path: Path) -> None:
    async with api(tmp_path) as a:
        for _ in range(LIMIT + 10):  # accepted requests never count (the key limit: 100/s)
            assert (await a.client.get(CREDITS, headers={"x-api-key": a.key})).status_code == 200
        kinds = [{"x-api-key": BAD}, {}, {"x-api-key": "not-a-key"}]
        for i in range(LIMIT):
            answer = await a.client.get(CREDITS, headers=kinds[i % 3])
            assert answer.status_code in {401, 403}, answer.text
        over = await a.client.get(CREDITS, headers={"x-api-key": BAD})
        body = problem(over, 429, "too-many-refused-keys")
        assert "refused API key" in body["detail"]
        wait = int(over.headers["retry-after"])
        assert 1 <= wait <= 60
        # now even the right key from this client waits: it is not looked up
        blocked = await a.client.get(CREDITS, headers={"x-api-key": a.key})
        problem(blocked, 429, "too-many-refused-keys")
        a.shell.clock.advance(seconds=wait)  # the next minute
        assert (await a.client.get(CREDITS, headers={"x-api-key": a.key})).status_code == 200
        problem(await a.client.get(CREDITS, headers={"x-api-key": BAD}), 403, "invalid-api-key")


async def test_two_keys_at_once_count_as_refusals(tmp_path: Path) -> None:
    async with api(tmp_path) as a:
        both = {"x-api-key": a.key, "authorization": f"Bearer {BAD}"}
        for _ in range(LIMIT):
            problem(await a.client.get(CREDITS, headers=both), 403)
        problem(await a.client.get(CREDITS, headers=both), 429, "too-many-refused-keys")


async def test_the_gate_counts_ips_apart_and_replicas_together(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/gate.db"
    await upgrade_async(url)
    database = make_database(url)
    try:
        rule = Limit("api-refused", 3, 60)
        one, two = RefusalGate(database, rule), RefusalGate(database, rule)  # two processes
        now = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
        assert [await one.refused("192.0.2.1", now) for _ in range(2)] == [None, None]
        assert await two.refused("192.0.2.1", now) is None  # the third, counted by the other
        assert await two.refused("192.0.2.1", now) == 30  # the fourth: blocked till 12:01
        assert two.blocked("192.0.2.1", now) == 30
        assert one.blocked("192.0.2.1", now) is None  # learns it at its next refusal
        assert await one.refused("192.0.2.1", now) == 30
        assert await one.refused("2001:db8::/64", now) is None  # another client
        later = datetime(2026, 12, 1, 12, 1, 0, tzinfo=UTC)
        assert one.blocked("192.0.2.1", later) is None
        assert await one.refused("192.0.2.1", later) is None
    finally:
        await database.dispose()
