"""POST /api/v1/validate and /api/v1/validate/batch through HTTP (web/api/v1.py) on the SaaS
app, fake DNS and SMTP: the answer's fields, broken and hostile bodies (422, 413, 415, and
never a charge), the order of refusals (the key first), credits (402, all-or-nothing,
MAILVET_CREDITS=off), duplicates answered in order, and the OpenAPI schema."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from mailvet.domain.api_keys import Scope
from mailvet.services import api_keys
from mailvet.services.api_validation import BatchRequest, ValidateRequest
from mailvet.web.api import api_router, v1
from mailvet.web.api.auth import PROBLEM_JSON
from tests.api_validation_helpers import Ledger, account_with, ledger
from tests.web.account_helpers import writing
from tests.web.shell_helpers import HTTPS, Shell, look, shell

pytestmark = pytest.mark.pipeline

VALIDATE = "/api/v1/validate"
BATCH = "/api/v1/validate/batch"
FIELDS = {
    "email",
    "status",
    "reason",
    "normalized",
    "ascii_email",
    "suggestion",
    "disposable",
    "role",
    "free",
    "catch_all",
    "mx",
    "smtp_code",
}


@dataclass
class Api:
    shell: Shell
    client: AsyncTestClient[Litestar]
    account_id: str
    key: str

    async def post(
        self, path: str, body: Any, *, key: str | None = None, **headers: str
    ) -> httpx.Response:
        sent = {"authorization": f"Bearer {key or self.key}", **headers}
        if isinstance(body, bytes):
            return await self.client.post(path, content=body, headers=sent)
        return await self.client.post(path, json=body, headers=sent)

    async def ledger(self) -> Ledger:
        async with look(self.shell.url) as database:
            return await ledger(database, self.account_id)

    async def a_key(self, *scopes: str) -> str:
        async with writing(self.shell.url) as session:
            made = await api_keys.create_key(
                session, self.account_id, label="test", scopes=scopes, now=self.shell.clock.now
            )
        return made.key


@asynccontextmanager
async def api(
    tmp_path: Path, *, credits: int = 100, env: Mapping[str, str] | None = None
) -> AsyncIterator[Api]:
    async with shell(tmp_path, env, areas=[api_router()]) as s:
        async with look(s.url) as database:
            ann = await account_with(database, "ann@example.com", credits)
        async with AsyncTestClient(s.app, base_url=HTTPS) as client:
            made = Api(s, client, ann.id, "")
            made.key = await made.a_key()
            yield made


def problem(answer: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = answer.json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == status
    if slug is not None:
        assert body["type"].endswith(slug)
    return body


async def test_one_address_answers_its_verdict_and_the_balance(tmp_path: Path) -> None:
    async with api(tmp_path) as a:
        answer = await a.post(VALIDATE, {"email": "Ann.Lee@Example.com"})

        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == FIELDS | {"credits_remaining"}
        assert body["email"] == "Ann.Lee@Example.com"
        assert (body["status"], body["reason"]) == ("deliverable", "accepted")
        assert body["normalized"] == "Ann.Lee@example.com"
        assert body["mx"] == "mx.example.com"
        assert body["smtp_code"] == 250
        assert body["catch_all"] is False  # the random mailbox was refused
        assert body["credits_remaining"] == 99
        assert (await a.ledger()).spent == 1


@pytest.mark.parametrize(
    ("checks", "reason", "mx"),
    [("syntax", "not_checked", ""), ("dns", "not_checked", "mx.example.org")],
)
async def test_fewer_checks_still_cost_a_credit(
    tmp_path: Path, checks: str, reason: str, mx: str
) -> None:
    async with api(tmp_path) as a:
        answer = await a.post(VALIDATE, {"email": "ann@example.org", "checks": checks})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["reason"], answer.json()["mx"]) == (reason, mx)
        assert answer.json()["catch_all"] is None  # not established: no probe
        assert answer.json()["credits_remaining"] == 99


@pytest.mark.parametrize(
    "email", ["ann@bücher.de", "jörg@example.org", "名前@例え.jp", "ann@exa\u200bmple.org"]
)
async def test_non_ascii_addresses_get_a_verdict(tmp_path: Path, email: str) -> None:
    async with api(tmp_path) as a:
        answer = await a.post(VALIDATE, {"email": email, "checks": "syntax"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["email"] == email


BROKEN_SINGLE: list[tuple[bytes, int]] = [
    (b"not json", 422),
    (b"", 422),
    (b"null", 422),
    (b"[]", 422),
    (b'"ann@example.com"', 422),
    (b"{}", 422),
    (b'{"email": 3}', 422),
    (b'{"email": null}', 422),
    (b'{"email": ["ann@example.com"]}', 422),
    (b'{"email": ""}', 422),
    (b'{"email": "   "}', 422),
    (json.dumps({"email": "a" * 321}).encode(), 422),
    (b'{"email": "ann@example.com", "checks": "full"}', 422),
    (b'{"email": "ann@example.com", "checks": 1}', 422),
    (b'{"email": "ann@example.com", "timeout": 31}', 422),
    (b'{"email": "ann@example.com", "timeout": 0}', 422),
    (b'{"email": "ann@example.com", "timeout": -1}', 422),
    (b'{"email": "ann@example.com", "timeout": "5"}', 422),
    (b'{"email": "ann@example.com", "timeout": 1e400}', 422),
    (b"[" * 5000 + b"]" * 5000, 422),
    (b'{"email": "\xff\xfe"}', 422),  # not UTF-8
    (json.dumps({"email": "a" * 20_000}).encode(), 413),  # over the body limit
]


@pytest.mark.parametrize(("body", "status"), BROKEN_SINGLE)
async def test_a_broken_body_is_a_problem_and_costs_nothing(
    tmp_path: Path, body: bytes, status: int
) -> None:
    async with api(tmp_path) as a:
        answer = await a.post(VALIDATE, body, **{"content-type": "application/json"})
        problem(answer, status)
        assert (await a.ledger()).spent == 0


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""],
)
async def test_a_body_that_is_not_json_is_415(tmp_path: Path, content_type: str) -> None:
    async with api(tmp_path) as a:
        body = b'{"email": "ann@example.com"}'
        for path in (VALIDATE, BATCH):
            answer = await a.post(path, body, **{"content-type": content_type})
            problem(answer, 415, "unsupported-media-type")
        # a JSON subtype is JSON
        answer = await a.post(VALIDATE, body, **{"content-type": "application/merge+json"})
        assert answer.status_code == 200, answer.text


async def test_the_key_is_refused_before_the_body_is_judged(tmp_path: Path) -> None:
    async with api(tmp_path) as a:
        anonymous = await a.client.post(VALIDATE, content=b"junk")
        problem(anonymous, 401)
        wrong = await a.post(VALIDATE, b"junk", key="mv_nosuchkey_secret")
        problem(wrong, 403)
        jobs_only = await a.a_key(Scope.JOBS_READ)
        for path in (VALIDATE, BATCH):
            out_of_scope = await a.post(path, {"email": "ann@example.com"}, key=jobs_only)
            problem(out_of_scope, 403, "insufficient-scope")
        assert (await a.ledger()).spent == 0


async def test_an_empty_balance_is_402_and_credits_off_is_free(tmp_path: Path) -> None:
    async with api(tmp_path, credits=0) as a:
        problem(await a.post(VALIDATE, {"email": "ann@example.com"}), 402, "insufficient-credits")
        problem(await a.post(BATCH, {"emails": ["ann@example.com"]}), 402)
    async with api(tmp_path / "off", credits=0, env={"MAILVET_CREDITS": "off"}) as a:
        single = await a.post(VALIDATE, {"email": "ann@example.com"})
        many = await a.post(BATCH, {"emails": ["ann@example.com", "bob@example.com"]})
        assert single.status_code == 200, single.text
        assert single.json()["credits_remaining"] is None
        assert many.status_code == 200, many.text
        assert many.json()["credits_remaining"] is None
        assert await a.ledger() == Ledger(balance=0, entries=0, spent=0, refunded=0, pending=0)


async def test_an_unconfirmed_account_may_not_validate(tmp_path: Path) -> None:
    async with api(tmp_path) as a:
        async with look(a.shell.url) as database:
            bob = await account_with(database, "bob@example.com", 10, confirmed=False)
        async with writing(a.shell.url) as session:
            key = (await api_keys.create_key(session, bob.id, label="b", now=a.shell.clock.now)).key
        problem(await a.post(VALIDATE, {"email": "x@example.com"}, key=key), 403)


# --- batches ---------------------------------------------------------------------------------


async def test_a_batch_answers_in_order_and_charges_duplicates_once(tmp_path: Path) -> None:
    async with api(tmp_path, credits=3) as a:
        emails = [
            "ann@example.com",
            "gone@example.com",  # FakeProber: every mailbox exists
            "ANN@EXAMPLE.COM",  # not the same local part
            "ann@Example.com",  # the first one again
            "nope",
            "nope",
        ]
        answer = await a.post(BATCH, {"emails": emails, "checks": "syntax"})
        problem(answer, 402)  # four distinct addresses, three credits: nothing checked

        answer = await a.post(BATCH, {"emails": [*emails[:2], *emails[3:]], "checks": "syntax"})

        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"results", "credits_remaining"}
        results = body["results"]
        assert [r["email"] for r in results] == [*emails[:2], *emails[3:]]
        assert all(set(r) == FIELDS for r in results)
        assert [r["reason"] for r in results] == [
            "not_checked",
            "not_checked",
            "not_checked",
            "invalid_syntax",
            "invalid_syntax",
        ]
        assert results[0]["normalized"] == results[2]["normalized"]
        assert body["credits_remaining"] == 0
        assert (await a.ledger()).spent == 3


BROKEN_BATCH: list[tuple[bytes, int]] = [
    (b"not json", 422),
    (b"{}", 422),
    (b'{"emails": []}', 422),
    (b'{"emails": "ann@example.com"}', 422),
    (b'{"emails": [1, 2]}', 422),
    (b'{"emails": [null]}', 422),
    (b'{"emails": [""]}', 422),
    (b'{"emails": ["ann@example.com", "  "]}', 422),
    (json.dumps({"emails": ["a" * 321]}).encode(), 422),
    (b'{"emails": ["ann@example.com"], "checks": "everything"}', 422),
    (json.dumps({"emails": [f"u{n}@example.com" for n in range(1001)]}).encode(), 413),
    (json.dumps({"emails": ["a" * 320] * 7000}).encode(), 413),  # over the body limit
]


@pytest.mark.parametrize(("body", "status"), BROKEN_BATCH)
async def test_a_broken_batch_is_a_problem_and_costs_nothing(
    tmp_path: Path, body: bytes, status: int
) -> None:
    async with api(tmp_path) as a:
        answer = await a.post(BATCH, body, **{"content-type": "application/json"})
        got = problem(answer, status)
        if status == 413:  # too many entries, or a body too large to be read at all
            many = len(body) < v1.MAX_BATCH_BODY
            assert got["type"].endswith("batch-too-large") is many, got
        assert (await a.ledger()).spent == 0


async def test_the_schema_documents_both_routes_with_examples(tmp_path: Path) -> None:
    async with api(tmp_path) as a:
        schema = (await a.client.get("/schema/openapi.json")).json()
    for path in (VALIDATE, BATCH):
        operation = schema["paths"][path]["post"]
        body = operation["requestBody"]["content"]["application/json"]
        assert body["schema"]["$ref"].endswith("Request")
        assert body["examples"]  # of the body itself, not only of each field
        for example in body["examples"].values():  # each one a body the route takes
            request = BatchRequest if path == BATCH else ValidateRequest
            msgspec.json.decode(json.dumps(example["value"]), type=request)
        answers = operation["responses"]
        assert {"200", "401", "402", "403", "413", "415", "422"} <= set(answers)
        assert "400" not in answers  # Litestar's own: a body that does not decode is a 422
        assert answers["200"]["content"]["application/json"]["examples"]
        assert answers["402"]["content"][PROBLEM_JSON]["examples"]
