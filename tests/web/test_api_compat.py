"""The original's API (web/api/compat.py) through HTTP, on fake DNS and SMTP: both answer
shapes of POST /api/validate-email and the balance of /api/get-credit-balance, with either
header; every status the original's scripts know (415, 401, 403, 402, 400, 503) and ours
(413, 429), each as `{"error": ...}`; a refused or failed check costs nothing; the per-key
limit counted together with /api/v1; the routes in /schema; and on the site as served."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import dns.resolver
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import build_deps
from mailvet.domain.ports import MailRoute, RouteKind
from mailvet.services import api_keys
from mailvet.settings import load_settings
from mailvet.web.api import api_router
from mailvet.web.api.compat import MAX_BODY, compat_router
from mailvet.web.app import create_app
from mailvet.web.context import build_web_context
from tests.api_validation_helpers import Ledger, account_with, ledger
from tests.fakes import FakeProber, FakeResolver, WatchedJobs
from tests.web.account_helpers import writing
from tests.web.shell_helpers import HTTPS, Clock, cheap_hasher, look
from tests.web.site_helpers import site_under_test
from tests.web.test_api_validate import FIELDS

pytestmark = pytest.mark.pipeline

VALIDATE = "/api/validate-email"
BALANCE = "/api/get-credit-balance"
VERDICT = FIELDS | {"credits_remaining"}  # /api/v1/validate's answer


def no_dns_here(domain: str) -> MailRoute:
    """A host without resolver configuration: dnspython's own refusal."""
    if domain == "nodns.example":
        raise dns.resolver.NoResolverConfiguration  # what Resolver() raises without one
    return MailRoute(RouteKind.MX, (f"mx.{domain}",))


@dataclass
class Compat:
    client: AsyncTestClient[Litestar]
    clock: Clock
    url: str
    account_id: str
    key: str

    async def post(
        self, path: str, body: Any = None, *, key: str | None = "", **headers: str
    ) -> httpx.Response:
        sent = dict(headers)
        if key is not None:
            sent.setdefault("x-api-key", key or self.key)
        if isinstance(body, bytes):
            return await self.client.post(path, content=body, headers=sent)
        if body is None:
            return await self.client.post(path, headers=sent)
        return await self.client.post(path, json=body, headers=sent)

    async def a_key(self, account_id: str | None = None, **options: Any) -> str:
        async with writing(self.url) as session:
            made = await api_keys.create_key(
                session,
                account_id or self.account_id,
                label="test",
                now=self.clock.now,
                **options,
            )
        return made.key

    async def ledger(self, account_id: str | None = None) -> Ledger:
        async with look(self.url) as database:
            return await ledger(database, account_id or self.account_id)

    async def account(self, email: str, credits: int, *, confirmed: bool = True) -> str:
        async with look(self.url) as database:
            return (await account_with(database, email, credits, confirmed=confirmed)).id


@asynccontextmanager
async def compat(
    tmp_path: Path, *, credits: int = 100, env: Mapping[str, str] | None = None
) -> AsyncIterator[Compat]:
    """The SaaS app with /api/v1 and the compatibility routes; DNS fails for nodns.example
    as on a host without resolver configuration."""
    settings = load_settings(
        {"MAILVET_DATA_DIR": str(tmp_path), "MAILVET_PUBLIC_URL": HTTPS, **(env or {})}
    )
    deps = await build_deps(
        settings,
        jobs=WatchedJobs(),
        storage=MemoryStorage(),
        bus=MemoryBus(),
        resolver=FakeResolver(no_dns_here),
        prober=FakeProber(),
        syntax_pool=None,
    )
    clock = Clock()
    try:
        web = await build_web_context(settings, hasher=cheap_hasher(), clock=clock)
        try:
            app = create_app(deps, web=web, areas=[api_router(), compat_router()])
            async with look(settings.database) as database:
                ann = await account_with(database, "ann@example.com", credits)
            async with AsyncTestClient(app, base_url=HTTPS) as client:
                made = Compat(client, clock, settings.database, ann.id, "")
                made.key = await made.a_key()
                yield made
        finally:
            await web.close()
    finally:
        await deps.close()


def error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return str(body["error"])


# --- 200 -------------------------------------------------------------------------------------


async def test_the_full_answer_is_the_verdict_and_the_balance(tmp_path: Path) -> None:
    async with compat(tmp_path) as c:
        answer = await c.post(VALIDATE, {"email": "Ann.Lee@Example.com"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == VERDICT
        assert (body["email"], body["status"], body["reason"]) == (
            "Ann.Lee@Example.com",
            "deliverable",
            "accepted",
        )
        assert (body["mx"], body["smtp_code"], body["credits_remaining"]) == (
            "mx.example.com",
            250,
            99,
        )
        assert (await c.ledger()).spent == 1


@pytest.mark.parametrize("flag", [True, "true", "TRUE"])
async def test_single_level_response_answers_the_status_alone(tmp_path: Path, flag: object) -> None:
    async with compat(tmp_path) as c:
        answer = await c.post(VALIDATE, {"email": "bob@example.org", "single_level_response": flag})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"email": "bob@example.org", "result": "deliverable"}
        assert (await c.ledger()).balance == 99  # the same price


@pytest.mark.parametrize("flag", [False, "false", None])
async def test_single_level_response_false_is_the_full_answer(tmp_path: Path, flag: object) -> None:
    async with compat(tmp_path) as c:
        answer = await c.post(VALIDATE, {"email": "bob@example.org", "single_level_response": flag})
        assert set(answer.json()) == VERDICT


async def test_the_balance_with_either_header_and_any_body(tmp_path: Path) -> None:
    async with compat(tmp_path, credits=42) as c:
        assert (await c.post(BALANCE)).json() == {"credits": 42}
        bearer = await c.post(BALANCE, key=None, authorization=f"Bearer {c.key}")
        assert bearer.status_code == 200 and bearer.json() == {"credits": 42}
        assert (await c.post(BALANCE, b"whatever", **{"content-type": "text/plain"})).json() == {
            "credits": 42
        }
        await c.post(VALIDATE, {"email": "ann@example.org"})
        assert (await c.post(BALANCE, {})).json() == {"credits": 41}


async def test_bearer_validates_too(tmp_path: Path) -> None:
    async with compat(tmp_path) as c:
        answer = await c.post(
            VALIDATE, {"email": "ann@example.org"}, key=None, authorization=f"Bearer {c.key}"
        )
        assert answer.status_code == 200 and answer.json()["credits_remaining"] == 99


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("media", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_a_body_that_is_not_json_is_415(tmp_path: Path, media: str) -> None:
    async with compat(tmp_path) as c:
        headers = {"content-type": media} if media else {}
        answer = await c.post(VALIDATE, b'{"email": "ann@example.org"}', **headers)
        assert "JSON" in error(answer, 415)
        assert (await c.ledger()).spent == 0


@pytest.mark.parametrize("path", [VALIDATE, BALANCE])
async def test_no_key_is_401(tmp_path: Path, path: str) -> None:
    async with compat(tmp_path) as c:
        answer = await c.post(path, {"email": "ann@example.org"}, key=None)
        assert "API key" in error(answer, 401)
        assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_bad_keys_are_403(tmp_path: Path) -> None:
    async with compat(tmp_path) as c:
        async with writing(c.url) as session:
            made = await api_keys.create_key(session, c.account_id, label="t", now=c.clock.now)
            await api_keys.revoke_key(session, made.info.id, now=c.clock.now)
        revoked = made.key
        expired = await c.a_key(expires_at=c.clock.now - timedelta(seconds=1))
        reading = await c.a_key(scopes=["jobs:read"])
        body = {"email": "ann@example.org"}
        for key, said in [
            ("mv_nothing_here", "not valid"),
            (c.key + "x", "not valid"),
            (revoked, "revoked"),
            (expired, "expired"),
            (reading, "scope"),
        ]:
            assert said in error(await c.post(VALIDATE, body, key=key), 403)
        assert (await c.post(BALANCE, key=reading)).status_code == 200  # any scope
        assert (await c.ledger()).spent == 0


async def test_a_disabled_or_unconfirmed_account_is_403(tmp_path: Path) -> None:
    async with compat(tmp_path) as c:
        new = await c.account("new@example.com", 10, confirmed=False)
        new_key = await c.a_key(new)
        assert "confirm" in error(
            await c.post(VALIDATE, {"email": "a@example.org"}, key=new_key), 403
        )
        async with writing(c.url) as session:
            await session.execute(
                update(AccountRow).where(AccountRow.id == c.account_id).values(disabled=True)
            )
        assert "disabled" in error(await c.post(BALANCE), 403)


async def test_no_credits_is_402_and_charges_nothing(tmp_path: Path) -> None:
    async with compat(tmp_path, credits=1) as c:
        assert (await c.post(VALIDATE, {"email": "ann@example.org"})).status_code == 200
        assert "balance is 0" in error(await c.post(VALIDATE, {"email": "bob@example.org"}), 402)
        assert (await c.ledger()).balance == 0 and (await c.ledger()).spent == 1


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"email": ""}',
        b'{"email": "   "}',
        b'{"email": 5}',
        b'{"email": null}',
        b'{"email": ["ann@example.org"]}',
        b'["ann@example.org"]',
        b'"ann@example.org"',
        b"not json",
        b"",
        b'{"email": "ann@example.org", "single_level_response": "maybe"}',
        b'{"email": "ann@example.org", "single_level_response": 1}',
        ('{"email": "' + "a" * 330 + '@example.org"}').encode(),
        b"\xff\xfe",
    ],
)
async def test_no_email_is_400_and_charges_nothing(tmp_path: Path, body: bytes) -> None:
    async with compat(tmp_path) as c:
        error(await c.post(VALIDATE, body, **{"content-type": "application/json"}), 400)
        assert (await c.ledger()).spent == 0


async def test_an_unavailable_engine_is_503_and_the_credit_refunded(tmp_path: Path) -> None:
    async with compat(tmp_path) as c:
        answer = await c.post(VALIDATE, {"email": "ann@nodns.example"})
        assert "unavailable" in error(answer, 503)
        after = await c.ledger()
        assert (after.balance, after.spent, after.refunded, after.pending) == (100, 1, 1, 0)
        # the engine itself is fine for other domains
        assert (await c.post(VALIDATE, {"email": "ann@example.org"})).status_code == 200


async def test_the_v1_routes_answer_an_unavailable_engine_503_too(tmp_path: Path) -> None:
    """/api/v1/validate and /validate/batch: the same engine failure is a 503 problem, and
    the credits of that request are refunded (the batch's all of them)."""
    async with compat(tmp_path) as c:
        one = await c.post("/api/v1/validate", {"email": "ann@nodns.example"}, key=None,
                           authorization=f"Bearer {c.key}")  # fmt: skip
        assert one.status_code == 503, one.text
        assert one.headers["content-type"].startswith("application/problem+json")
        assert one.json()["type"].endswith("engine-unavailable")
        batch = await c.post(
            "/api/v1/validate/batch",
            {"emails": ["bob@example.org", "ann@nodns.example"]},
            key=None,
            authorization=f"Bearer {c.key}",
        )
        assert batch.status_code == 503, batch.text
        after = await c.ledger()
        assert (after.balance, after.spent, after.refunded, after.pending) == (100, 3, 3, 0)


async def test_a_body_too_large_is_413(tmp_path: Path) -> None:
    async with compat(tmp_path) as c:
        big = b'{"email": "ann@example.org", "pad": "' + b"x" * MAX_BODY + b'"}'
        error(await c.post(VALIDATE, big, **{"content-type": "application/json"}), 413)


async def test_the_rate_limit_is_429_and_counted_with_api_v1(tmp_path: Path) -> None:
    async with compat(tmp_path, env={"MAILVET_API_RATE_LIMIT": "3/minute"}) as c:
        v1 = await c.client.get("/api/v1/credits", headers={"x-api-key": c.key})
        assert v1.status_code == 200
        assert (await c.post(VALIDATE, {"email": "ann@example.org"})).status_code == 200
        assert (await c.post(BALANCE)).status_code == 200
        refused = await c.post(BALANCE)
        assert "rate limit" in error(refused, 429)
        assert refused.headers["retry-after"] == "30"  # the clock is 30 s into its minute
        error(await c.post(VALIDATE, {"email": "ann@example.org"}), 429)
        assert (await c.ledger()).spent == 1
        c.clock.advance(seconds=30)
        assert (await c.post(BALANCE)).status_code == 200


async def test_the_compatibility_routes_are_outside_the_per_ip_limit(tmp_path: Path) -> None:
    async with compat(tmp_path, env={"MAILVET_WEB_RATE_LIMIT": "2/minute"}) as c:
        assert [(await c.post(BALANCE)).status_code for _ in range(5)] == [200] * 5
        assert [(await c.client.get("/pricing")).status_code for _ in range(3)] == [200, 200, 429]


# --- schema and site -------------------------------------------------------------------------


async def test_the_routes_are_in_the_schema_deprecated_with_their_shapes(tmp_path: Path) -> None:
    async with compat(tmp_path) as c:
        schema = (await c.client.get("/schema/openapi.json")).json()
        validate = schema["paths"][VALIDATE]["post"]
        balance = schema["paths"][BALANCE]["post"]
        for operation in (validate, balance):
            assert operation["deprecated"] is True and operation["tags"] == ["compatibility"]
        body = validate["requestBody"]["content"]["application/json"]["schema"]
        assert body["required"] == ["email"]
        assert set(body["properties"]) == {"email", "single_level_response"}
        assert {"200", "400", "401", "402", "403", "413", "415", "429", "503"} <= set(
            validate["responses"]
        )
        examples = validate["responses"]["200"]["content"]["application/json"]["examples"]
        shapes = [set(example["value"]) for example in examples.values()]
        assert VERDICT in shapes and {"email", "result"} in shapes
        assert {"200", "401", "403", "429"} <= set(balance["responses"])


async def test_the_site_serves_the_compatibility_routes(tmp_path: Path) -> None:
    async with site_under_test(tmp_path) as s:
        ann = await s.account("ann@example.com", credits=7)
        async with writing(s.url) as session:
            key = (await api_keys.create_key(session, ann.id, label="t", now=Clock().now)).key
        async with AsyncTestClient(s.site.app, base_url=HTTPS) as client:
            answer = await client.post(BALANCE, headers={"x-api-key": key})
            assert answer.status_code == 200 and answer.json() == {"credits": 7}
