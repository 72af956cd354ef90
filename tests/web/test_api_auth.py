"""The public API's authentication (web/api/auth.py) and its first endpoint, GET
/api/v1/credits, on the SaaS as `mailvet run web` serves it: every refusal as RFC 9457
problem details (401 no key; 403 invalid, revoked, expired, disabled account, out of
scope), both headers, a key of another account, revocation and expiry at once, hostile
headers, and an API that sets no session cookie, takes none, and needs no CSRF token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import get, post
from litestar.params import JSONBody
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.api_key_models import ApiKeyRow
from mailvet.domain.api_keys import Scope
from mailvet.services import api_keys
from mailvet.services import credits as ledger
from mailvet.web.api import api_router
from mailvet.web.api.auth import PROBLEM_JSON, Principal, requires_scope
from mailvet.web.app import create_app
from tests.web.account_helpers import writing
from tests.web.auth_helpers import Browser, log_in
from tests.web.shell_helpers import HTTPS, Clock, look
from tests.web.site_helpers import SiteUnderTest, site_under_test

pytestmark = pytest.mark.pipeline

ANN = "ann.lee@example.com"
BOB = "bob@example.com"
CREDITS = "/api/v1/credits"


@asynccontextmanager
async def api(tmp_path: Path) -> AsyncIterator[tuple[SiteUnderTest, Clock, AsyncTestClient[Any]]]:
    clock = Clock()
    async with (
        site_under_test(tmp_path, clock=clock) as s,
        AsyncTestClient(s.site.app, base_url=HTTPS) as client,
    ):
        yield s, clock, client


async def a_key(s: SiteUnderTest, clock: Clock, account_id: str, **options: Any) -> str:
    async with writing(s.url) as session:
        made = await api_keys.create_key(
            session, account_id, label="test", now=clock.now, **options
        )
    return made.key


def problem(answer: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = answer.json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == status and body["type"].endswith(slug)
    assert body["title"] and body["detail"]
    assert "set-cookie" not in answer.headers
    return body


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_the_credits_of_the_keys_account_with_either_header(tmp_path: Path) -> None:
    async with api(tmp_path) as (s, clock, client):
        ann = await s.account(ANN, credits=100)
        key = await a_key(s, clock, ann.id)
        async with writing(s.url) as session:
            await ledger.adjust(session, ann.id, -7, actor="cli", reason="support", now=clock.now)
        for headers in (
            bearer(key),
            {"authorization": f"bearer   {key} "},
            {"x-api-key": key},
            {**bearer(key), "x-api-key": key},  # the same key twice: fine
        ):
            answer = await client.get(CREDITS, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("application/json")
            assert "set-cookie" not in answer.headers
            body = answer.json()
            assert (body["balance"], body["reserved"]) == (93, 0)
            assert [(e["kind"], e["amount"]) for e in body["entries"]] == [
                ("admin_adjustment", -7),
                ("admin_adjustment", 100),
            ]
            assert set(body["entries"][0]) == {
                "id", "kind", "amount", "created_at", "job_id", "reason"
            }  # fmt: skip
        one = await client.get(CREDITS, params={"limit": "1"}, headers=bearer(key))
        assert len(one.json()["entries"]) == 1
        for limit in ("0", "101", "x"):
            refused = await client.get(CREDITS, params={"limit": limit}, headers=bearer(key))
            problem(refused, 422, "invalid-request")


async def test_a_key_of_another_account_sees_that_account_only(tmp_path: Path) -> None:
    async with api(tmp_path) as (s, clock, client):
        ann = await s.account(ANN, credits=100)
        bob = await s.account(BOB, credits=5)
        anns, bobs = await a_key(s, clock, ann.id), await a_key(s, clock, bob.id)
        assert (await client.get(CREDITS, headers=bearer(anns))).json()["balance"] == 100
        assert (await client.get(CREDITS, headers=bearer(bobs))).json()["balance"] == 5
        # bob's key id with ann's secret is no key
        forged = anns.rsplit("_", 1)[0].replace(anns.split("_")[1], bobs.split("_")[1])
        forged += "_" + anns.rsplit("_", 1)[1]
        problem(await client.get(CREDITS, headers=bearer(forged)), 403, "invalid-api-key")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": ""},
        {"authorization": "Bearer"},
        {"authorization": "Bearer    "},
        {"authorization": "Basic YW5uOnB3"},
        {"x-api-key": ""},
        {"x-api-key": "   "},
    ],
)
async def test_no_key_is_401(tmp_path: Path, headers: dict[str, str]) -> None:
    async with api(tmp_path) as (s, _clock, client):
        await s.account(ANN)
        answer = await client.get(CREDITS, headers=headers)
        problem(answer, 401, "missing-api-key")
        assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "mv_nope"},
        {"x-api-key": "mv_" + "a" * 16 + "_" + "b" * 43},  # well formed, unknown
        {"authorization": "Bearer not-a-key"},
        {"x-api-key": "mv_" + "a" * 16 + "_" + "b" * 43 + "x" * 10_000},  # over-long
        {b"x-api-key": ("mv_" + "é" * 16 + "_" + "b" * 43).encode()},  # non-ASCII (UTF-8)
        {b"x-api-key": ("mv_" + "a" * 15 + "\xff_" + "b" * 43).encode("latin-1")},
        {"x-api-key": "' OR 1=1 --"},
    ],
)
async def test_a_key_that_is_not_one_is_403(
    tmp_path: Path, headers: dict[str, str] | dict[bytes, bytes]
) -> None:
    async with api(tmp_path) as (s, _clock, client):
        await s.account(ANN)
        problem(await client.get(CREDITS, headers=headers), 403, "invalid-api-key")


async def test_a_wrong_secret_and_two_different_keys_are_403(tmp_path: Path) -> None:
    async with api(tmp_path) as (s, clock, client):
        ann = await s.account(ANN)
        key, other = await a_key(s, clock, ann.id), await a_key(s, clock, ann.id)
        wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
        problem(await client.get(CREDITS, headers=bearer(wrong)), 403, "invalid-api-key")
        both = await client.get(CREDITS, headers={**bearer(key), "x-api-key": other})
        assert "Two different" in problem(both, 403, "invalid-api-key")["detail"]


async def test_revocation_expiry_and_a_disabled_account_take_effect_at_once(
    tmp_path: Path,
) -> None:
    async with api(tmp_path) as (s, clock, client):
        ann = await s.account(ANN)
        key = await a_key(s, clock, ann.id, expires_at=clock.now + timedelta(minutes=5))
        assert (await client.get(CREDITS, headers=bearer(key))).status_code == 200
        clock.advance(minutes=5, seconds=1)
        problem(await client.get(CREDITS, headers=bearer(key)), 403, "expired-api-key")

        other = await a_key(s, clock, ann.id)
        assert (await client.get(CREDITS, headers={"x-api-key": other})).status_code == 200
        async with writing(s.url) as session:
            await api_keys.revoke_key(session, other.split("_")[1], now=clock.now)
        problem(await client.get(CREDITS, headers={"x-api-key": other}), 403, "revoked-api-key")

        third = await a_key(s, clock, ann.id)
        async with writing(s.url) as session:
            await session.execute(
                update(AccountRow).where(AccountRow.id == ann.id).values(disabled=True)
            )
        problem(await client.get(CREDITS, headers=bearer(third)), 403, "disabled-account")


async def test_last_use_is_recorded(tmp_path: Path) -> None:
    async with api(tmp_path) as (s, clock, client):
        ann = await s.account(ANN)
        key = await a_key(s, clock, ann.id)
        assert (await client.get(CREDITS, headers=bearer(key))).status_code == 200
        async with look(s.url) as database, database.session_maker() as session:
            row = await session.get(ApiKeyRow, key.split("_")[1])
            assert row is not None and row.last_used_at == clock.now


async def test_no_session_cookie_signs_an_api_call_in_and_no_csrf_token_is_needed(
    tmp_path: Path,
) -> None:
    async with api(tmp_path) as (s, clock, client):
        ann = await s.account(ANN)
        b = Browser(client)
        assert (await log_in(b, ANN)).status_code == 303
        assert b.cookie("mailvet_session")
        client.cookies = b.jar  # the browser's session cookie goes along: no key, no entry
        answer = await client.get(CREDITS)
        problem(answer, 401, "missing-api-key")
        key = await a_key(s, clock, ann.id)
        # an unsafe method with a key and no CSRF token reaches the router (405, a problem),
        # not the CSRF middleware's 403
        posted = await client.post(CREDITS, headers=bearer(key), json={})
        assert posted.status_code == 405 and "set-cookie" not in posted.headers
        answer = await client.get(CREDITS, headers=bearer(key))
        assert answer.status_code == 200 and "set-cookie" not in answer.headers


@get("/scoped", sync_to_thread=False, guards=[requires_scope(Scope.JOBS_WRITE)])
def scoped(principal: Principal) -> dict[str, str]:
    return {"account_id": principal.account_id, "key_id": principal.key_id}


@post("/scoped", sync_to_thread=False, status_code=200)
def posted(principal: Principal, data: JSONBody[dict[str, str]]) -> dict[str, str]:
    return {"key_id": principal.key_id, **data}


async def test_a_route_needing_a_scope_refuses_a_key_without_it(tmp_path: Path) -> None:
    async with site_under_test(tmp_path) as s:
        app = create_app(s.deps, web=s.site.web, areas=[api_router([scoped, posted])])
        ann = await s.account(ANN)
        clock = Clock()
        narrow = await a_key(s, clock, ann.id, scopes=["validate", "jobs:read"])
        wide = await a_key(s, clock, ann.id)
        async with AsyncTestClient(app, base_url=HTTPS) as client:
            refused = await client.get("/api/v1/scoped", headers=bearer(narrow))
            body = problem(refused, 403, "insufficient-scope")
            assert "jobs:write" in body["detail"]
            problem(await client.get("/api/v1/scoped"), 401, "missing-api-key")
            allowed = await client.get("/api/v1/scoped", headers={"x-api-key": wide})
            assert allowed.status_code == 200, allowed.text
            assert allowed.json() == {"account_id": ann.id, "key_id": wide.split("_")[1]}
            # a POST with a key and neither cookie nor CSRF token goes through
            sent = await client.post("/api/v1/scoped", headers=bearer(narrow), json={"a": "b"})
            assert sent.status_code == 200, sent.text
            assert sent.json() == {"key_id": narrow.split("_")[1], "a": "b"}
            assert "set-cookie" not in sent.headers
            problem(await client.post("/api/v1/scoped", json={"a": "b"}), 401, "missing-api-key")
            # any scope reads the credits
            assert (await client.get(CREDITS, headers=bearer(narrow))).status_code == 200


async def test_the_credits_endpoint_is_in_the_openapi_schema(tmp_path: Path) -> None:
    async with api(tmp_path) as (_s, _clock, client):
        schema = (await client.get("/schema/openapi.json")).json()
        answers = schema["paths"][CREDITS]["get"]["responses"]
        assert set(answers) == {"200", "401", "403", "422", "429"}  # no 400 of Litestar's
        assert answers["422"]["content"][PROBLEM_JSON]["examples"]
