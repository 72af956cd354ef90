"""MAILVET_API_RATE_LIMIT through HTTP on the SaaS app (web/api/auth.py's guard,
services/api_limits.py): exactly the limit per window under concurrent requests, the next
one a 429 problem with Retry-After, a new window (the test's clock moved) open again, two
app instances on one database file counting a key once, keys counted apart, the keyed API
outside the per-IP limit of the pages, and the default of 100 a second per key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from mailvet.domain.throttle import Rate
from mailvet.services import api_keys
from mailvet.settings import load_settings
from mailvet.web.api import api_router
from mailvet.web.api.auth import PROBLEM_JSON
from mailvet.web.app import create_app
from mailvet.web.context import build_web_context
from tests.api_validation_helpers import account_with
from tests.web.account_helpers import writing
from tests.web.shell_helpers import HTTPS, Shell, cheap_hasher, look, shell

pytestmark = pytest.mark.pipeline

CREDITS = "/api/v1/credits"
VALIDATE = "/api/v1/validate"


@dataclass
class Api:
    shell: Shell
    client: AsyncTestClient[Litestar]
    account_id: str

    async def a_key(self) -> str:
        async with writing(self.shell.url) as session:
            made = await api_keys.create_key(
                session, self.account_id, label="test", now=self.shell.clock.now
            )
        return made.key


@asynccontextmanager
async def api(tmp_path: Path, env: Mapping[str, str]) -> AsyncIterator[Api]:
    async with shell(tmp_path, env, areas=[api_router()]) as s:
        async with look(s.url) as database:
            ann = await account_with(database, "ann@example.com", 1000)
        async with AsyncTestClient(s.app, base_url=HTTPS) as client:
            yield Api(s, client, ann.id)


def keyed(key: str) -> dict[str, str]:
    return {"x-api-key": key}


def statuses(answers: list[httpx.Response]) -> dict[int, int]:
    found: dict[int, int] = {}
    for answer in answers:
        found[answer.status_code] = found.get(answer.status_code, 0) + 1
    return found


def too_many(answer: httpx.Response, retry_after: int) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    assert answer.headers["retry-after"] == str(retry_after)
    body = answer.json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == 429 and body["type"].endswith("rate-limited")


async def test_exactly_the_limit_per_window_then_429_then_a_new_window(tmp_path: Path) -> None:
    async with api(tmp_path, {"MAILVET_API_RATE_LIMIT": "25/minute"}) as a:
        key = await a.a_key()
        burst = await asyncio.gather(
            *(a.client.get(CREDITS, headers=keyed(key)) for _ in range(60))
        )
        assert statuses(list(burst)) == {200: 25, 429: 35}
        too_many(next(r for r in burst if r.status_code == 429), 30)  # the clock: 12:00:30
        a.shell.clock.advance(seconds=20)
        too_many(await a.client.get(CREDITS, headers=keyed(key)), 10)
        a.shell.clock.advance(seconds=10)  # the next minute
        again = await asyncio.gather(
            *(a.client.get(CREDITS, headers=keyed(key)) for _ in range(30))
        )
        assert statuses(list(again)) == {200: 25, 429: 5}


async def test_validation_is_limited_and_a_refused_call_costs_nothing(tmp_path: Path) -> None:
    env = {"MAILVET_API_RATE_LIMIT": "100/second,3/hour"}
    async with api(tmp_path, env) as a:
        key = await a.a_key()
        body = {"email": "bob@example.org", "checks": "syntax"}
        answers = [await a.client.post(VALIDATE, json=body, headers=keyed(key)) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        too_many(answers[-1], 3600 - 30)  # the hour's end, not the second's
        assert answers[2].json()["credits_remaining"] == 997


async def test_keys_are_counted_apart_and_bad_keys_are_not_counted(tmp_path: Path) -> None:
    async with api(tmp_path, {"MAILVET_API_RATE_LIMIT": "2/minute"}) as a:
        first, second = await a.a_key(), await a.a_key()
        wrong = [await a.client.get(CREDITS, headers=keyed(first + "x")) for _ in range(3)]
        assert {r.status_code for r in wrong} == {403}
        got = [(await a.client.get(CREDITS, headers=keyed(k))).status_code for k in [first] * 3]
        assert got == [200, 200, 429]
        got = [(await a.client.get(CREDITS, headers=keyed(k))).status_code for k in [second] * 3]
        assert got == [200, 200, 429]


async def test_two_app_instances_on_one_database_never_exceed_the_limit(tmp_path: Path) -> None:
    """Two web apps over one SQLite file, as two replicas: each leases slices of the key's
    window from the shared counter; together they answer exactly the limit."""
    async with api(tmp_path, {"MAILVET_API_RATE_LIMIT": "40/minute"}) as a:
        key = await a.a_key()
        other = await build_web_context(
            a.shell.web.settings, hasher=cheap_hasher(), clock=a.shell.clock
        )  # its own engine and pool on the same file
        try:
            second = create_app(a.shell.deps, web=other, areas=[api_router()])
            async with AsyncTestClient(second, base_url=HTTPS) as b:
                calls = [
                    c.get(CREDITS, headers=keyed(key)) for _ in range(50) for c in (a.client, b)
                ]
                answers = await asyncio.gather(*calls)
                assert statuses(list(answers)) == {200: 40, 429: 60}
                each = {
                    name: statuses(list(answers[i::2])).get(200, 0) for i, name in enumerate("ab")
                }
                assert each["a"] > 0 and each["b"] > 0, each  # both answered some
                a.shell.clock.advance(minutes=1)
                assert (await b.get(CREDITS, headers=keyed(key))).status_code == 200
        finally:
            await other.close()


async def test_the_keyed_api_is_outside_the_per_ip_limit_of_the_pages(tmp_path: Path) -> None:
    env = {"MAILVET_WEB_RATE_LIMIT": "3/minute", "MAILVET_API_RATE_LIMIT": "1000/second"}
    async with api(tmp_path, env) as a:
        key = await a.a_key()
        for _ in range(10):
            assert (await a.client.get(CREDITS, headers=keyed(key))).status_code == 200
        pages = [(await a.client.get("/pricing")).status_code for _ in range(4)]
        assert pages == [200, 200, 200, 429]  # the API's calls did not count for the pages
        assert (await a.client.get(CREDITS, headers=keyed(key))).status_code == 200


def test_the_default_limit_is_100_a_second_per_key() -> None:
    web = load_settings({}).web
    assert web.api_rate_limit == "100/second"
    assert web.api_rates == (Rate(limit=100, window_seconds=1),)


async def test_by_default_a_key_gets_100_calls_a_second_then_429_and_another_key_is_free(
    tmp_path: Path,
) -> None:
    async with api(tmp_path, {}) as a:  # MAILVET_API_RATE_LIMIT not set: the default
        busy, other = await a.a_key(), await a.a_key()
        # the test's clock stands still: every call falls in the one second 12:00:30
        burst = await asyncio.gather(
            *(a.client.get(CREDITS, headers=keyed(busy)) for _ in range(130))
        )
        assert statuses(list(burst)) == {200: 100, 429: 30}
        too_many(next(r for r in burst if r.status_code == 429), 1)  # the second's end
        assert (await a.client.get(CREDITS, headers=keyed(other))).status_code == 200
        too_many(await a.client.get(CREDITS, headers=keyed(busy)), 1)
        a.shell.clock.advance(seconds=1)  # the next second
        assert (await a.client.get(CREDITS, headers=keyed(busy))).status_code == 200
