"""The OpenAPI schema of the public API (issue 9 §2: "OpenAPI at /schema, every one with
examples"), walked operation by operation in the full site's /schema/openapi.json (what
`mailvet run web` serves): every operation under /api (the keyed /api/v1 and the
original's /api) has a summary and a description, every request body and every response
with content an example, every answer with a body documents its content, and no error is
documented in another media type than the one the route answers (problem details under
/api/v1, `{"error": ...}` JSON at /api): so Litestar's own 400, documented as
application/json with no example, is on none of them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from mailvet.web.api.auth import PROBLEM_JSON
from tests.web.shell_helpers import HTTPS
from tests.web.site_helpers import site_under_test

pytestmark = pytest.mark.pipeline

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# every operation of the API: one that goes missing from the schema fails here too
OPERATIONS = {
    ("POST", "/api/v1/validate"),
    ("POST", "/api/v1/validate/batch"),
    ("GET", "/api/v1/credits"),
    ("POST", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/{job_id}"),
    ("DELETE", "/api/v1/jobs/{job_id}"),
    ("GET", "/api/v1/jobs/{job_id}/results"),
    ("POST", "/api/validate-email"),
    ("POST", "/api/get-credit-balance"),
}
BODILESS = {"204", "304"}  # answers that have no body by definition (and redirects, 3xx)

Operation = tuple[str, str, dict[str, Any]]


async def _schema(data_dir: Path) -> dict[str, Any]:
    async with (
        site_under_test(data_dir) as s,
        AsyncTestClient(s.site.app, base_url=HTTPS) as client,
    ):
        answer = await client.get("/schema/openapi.json")
        assert answer.status_code == 200, answer.text
        schema: dict[str, Any] = answer.json()
        return schema


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The site's schema, fetched once for the module (in a loop of its own)."""
    return asyncio.run(_schema(tmp_path_factory.mktemp("site")))


def operations(schema: dict[str, Any]) -> Iterator[Operation]:
    for path, item in sorted(schema["paths"].items()):
        if path == "/api" or path.startswith("/api/"):
            for method in METHODS:
                if method in item:
                    yield method.upper(), path, item[method]


def has_example(media: dict[str, Any]) -> bool:
    return bool(media.get("examples") or "example" in media)


def test_every_operation_of_the_api_is_in_the_schema(schema: dict[str, Any]) -> None:
    assert {(method, path) for method, path, _ in operations(schema)} == OPERATIONS


def test_every_operation_has_a_summary_and_a_description(schema: dict[str, Any]) -> None:
    missing = [
        f"{method} {path}: {field}"
        for method, path, operation in operations(schema)
        for field in ("summary", "description")
        if not str(operation.get(field) or "").strip()
    ]
    assert not missing, "\n".join(missing)


def test_every_request_body_has_an_example(schema: dict[str, Any]) -> None:
    missing = []
    for method, path, operation in operations(schema):
        body = operation.get("requestBody")
        if body is None:
            continue
        content = body.get("content") or {}
        if not content:
            missing.append(f"{method} {path}: a request body without content")
        missing += [
            f"{method} {path}: request body {media_type}"
            for media_type, media in content.items()
            if not has_example(media)
        ]
    assert not missing, "\n".join(missing)


def test_every_answer_with_a_body_documents_it_with_an_example(schema: dict[str, Any]) -> None:
    missing = []
    for method, path, operation in operations(schema):
        for status, response in operation["responses"].items():
            content = response.get("content") or {}
            if not content and status not in BODILESS and not status.startswith("3"):
                missing.append(f"{method} {path} {status}: no content")
            missing += [
                f"{method} {path} {status} {media_type}: no example"
                for media_type, media in content.items()
                if not has_example(media)
            ]
    assert not missing, "\n".join(missing)


def test_errors_are_documented_in_the_media_type_they_are_answered_in(
    schema: dict[str, Any],
) -> None:
    """/api/v1 answers every error as problem details (web/api/auth.py), the original's
    routes as `{"error": ...}` JSON (web/api/compat.py)."""
    wrong = []
    for method, path, operation in operations(schema):
        problems = path.startswith("/api/v1/")
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            media_types = set(response.get("content") or {})
            if media_types != ({PROBLEM_JSON} if problems else {"application/json"}):
                wrong.append(f"{method} {path} {status}: {sorted(media_types)}")
                continue
            for media in response["content"].values():
                for example in (media.get("examples") or {}).values():
                    value = example.get("value")
                    if problems:
                        ok = (
                            isinstance(value, dict)
                            and set(value) == {"type", "title", "status", "detail"}
                            and value["status"] == int(status)
                        )
                    else:
                        ok = isinstance(value, dict) and set(value) == {"error"}
                    if not ok:
                        wrong.append(f"{method} {path} {status}: example {value!r}")
    assert not wrong, "\n".join(wrong)
