"""Every error under /api/v1 is RFC 9457 problem details, also those that no API route
answers itself: an unknown path (404), a wrong method (405, with Allow), a body too large
(413) and the app's 500; a query that does not validate is a 422 on every route (as an
invalid body is); a browser asking for an API path gets the problem too, while the
pages and the rest of /api keep their own error shapes (web/errors.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.params import Parameter
from litestar.testing import AsyncTestClient

from mailvet.services import api_keys
from mailvet.web.api import api_router
from mailvet.web.api.auth import PROBLEM_JSON
from tests.api_validation_helpers import account_with
from tests.web.account_helpers import writing
from tests.web.shell_helpers import HTTPS, look, shell

pytestmark = pytest.mark.pipeline


@get("/broken")
async def broken() -> str:
    raise RuntimeError("broken on purpose")


@get("/counted")
async def counted(times: Annotated[int, Parameter(ge=1, le=10)] = 1) -> dict[str, int]:
    return {"times": times}


@asynccontextmanager
async def api(tmp_path: Path) -> AsyncIterator[tuple[AsyncTestClient[Litestar], dict[str, str]]]:
    async with shell(tmp_path, areas=[api_router([broken, counted])]) as s:
        async with look(s.url) as database:
            ann = await account_with(database, "ann@example.com", 10)
        async with writing(s.url) as session:
            made = await api_keys.create_key(session, ann.id, label="t", now=s.clock.now)
        async with AsyncTestClient(s.app, base_url=HTTPS) as client:
            yield client, {"x-api-key": made.key}


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = answer.json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == status and body["type"] == "about:blank"
    assert body["title"] and body["detail"] and body["detail"] != body["title"]
    return body


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v1", "/api/v1/credits/x/y"])
async def test_an_unknown_path_is_a_404_problem(tmp_path: Path, path: str) -> None:
    async with api(tmp_path) as (client, key):
        assert problem(await client.get(path, headers=key), 404)["title"] == "Not Found"
        problem(await client.get(path), 404)  # no key: still no such path
        as_browser = await client.get(path, headers={"accept": "text/html"})
        problem(as_browser, 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("DELETE", "/api/v1/credits", "GET"), ("GET", "/api/v1/validate", "POST")],
)
async def test_a_wrong_method_is_a_405_problem_with_allow(
    tmp_path: Path, method: str, path: str, allowed: str
) -> None:
    async with api(tmp_path) as (client, key):
        answer = await client.request(method, path, headers=key)
        assert problem(answer, 405)["title"] == "Method Not Allowed"
        assert allowed in {m.strip() for m in answer.headers["allow"].split(",")}


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v1/credits", {"limit": "0"}),
        ("/api/v1/credits", {"limit": "101"}),
        ("/api/v1/credits", {"limit": "x"}),
        ("/api/v1/jobs", {"page": "0"}),
        ("/api/v1/jobs", {"per_page": "x"}),
        ("/api/v1/counted", {"times": "11"}),  # any route of the router, not one by one
    ],
)
async def test_a_query_that_does_not_validate_is_a_422_problem(
    tmp_path: Path, path: str, query: dict[str, str]
) -> None:
    async with api(tmp_path) as (client, key):
        assert (await client.get("/api/v1/counted", headers=key)).json() == {"times": 1}
        answer = await client.get(path, params=query, headers=key)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith(PROBLEM_JSON)
        body = answer.json()
        assert set(body) == {"type", "title", "status", "detail"}
        assert body["status"] == 422 and body["type"].endswith("#problem-invalid-request")
        assert body["title"] == "Invalid request"
        assert next(iter(query)) in body["detail"]


async def test_a_body_too_large_is_a_413_problem(tmp_path: Path) -> None:
    async with api(tmp_path) as (client, key):
        answer = await client.post(
            "/api/v1/validate",
            content=b'{"email": "' + b"a" * 40_000 + b'"}',
            headers={**key, "content-type": "application/json"},
        )
        problem(answer, 413)


async def test_an_unexpected_error_is_a_500_problem_that_says_nothing_of_it(
    tmp_path: Path,
) -> None:
    async with api(tmp_path) as (client, key):
        answer = await client.get("/api/v1/broken", headers=key)
        body = problem(answer, 500)
        assert "broken on purpose" not in answer.text and "RuntimeError" not in answer.text
        assert body["title"] == "Internal Server Error"


async def test_pages_and_the_rest_of_the_api_keep_their_shapes(tmp_path: Path) -> None:
    async with api(tmp_path) as (client, _):
        page = await client.get("/no-such-page", headers={"accept": "text/html"})
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        other = await client.get("/api/v2/nothing")
        assert other.status_code == 404
        assert other.headers["content-type"].startswith("application/json")
        assert set(other.json()) == {"error"}
