"""The declarative form reader (web/auth/schemas.PostedForm) on hostile posts: missing
fields are empty, long values are cut to their field's limit, the captcha comes from its
widget's name, a repeated name gives its first value, a file part is not a value, checkboxes
read as ticked or not, and a field declared without a limit is refused."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar import Litestar, Request, post
from litestar.testing import AsyncTestClient

from mailvet.adapters.captcha import TOKEN_FIELD
from mailvet.web.account.schemas import DeleteForm
from mailvet.web.auth.schemas import (
    EMAIL_CHARS,
    PASSWORD_CHARS,
    LoginForm,
    PostedForm,
    posted_fields,
)

pytestmark = pytest.mark.unit


class Undeclared(PostedForm, frozen=True, kw_only=True):
    count: int


def _app() -> Litestar:
    @post("/login", status_code=200)
    async def login(request: Request[Any, Any, Any]) -> dict[str, Any]:
        read: dict[str, Any] = msgspec.to_builtins(await LoginForm.read(request))
        return read

    @post("/delete", status_code=200)
    async def delete(request: Request[Any, Any, Any]) -> dict[str, Any]:
        read: dict[str, Any] = msgspec.to_builtins(await DeleteForm.read(request))
        return read

    return Litestar([login, delete])


async def test_missing_fields_are_empty_and_long_ones_are_cut() -> None:
    async with AsyncTestClient(_app()) as client:
        empty = await client.post("/login", data={})
        assert empty.json() == {"email": "", "password": "", "next": "", "captcha": ""}
        long = await client.post(
            "/login",
            data={"email": "a" * 10_000, "password": "p" * 10_000, TOKEN_FIELD: "t"},
        )
        read = long.json()
        assert read["email"] == "a" * EMAIL_CHARS
        assert read["password"] == "p" * PASSWORD_CHARS
        assert read["captcha"] == "t"


async def test_the_first_of_a_repeated_name_and_no_file_parts() -> None:
    async with AsyncTestClient(_app()) as client:
        repeated = await client.post(
            "/login",
            content=b"email=first&email=second",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert repeated.json()["email"] == "first"
        multipart = await client.post(
            "/login", files={"email": ("x.txt", b"file", "text/plain")}, data={"next": "/app"}
        )
        assert multipart.json()["email"] == ""
        assert multipart.json()["next"] == "/app"


@pytest.mark.parametrize(
    ("posted", "ticked"),
    [
        ({}, False),
        ({"understood": ""}, False),
        ({"understood": "off"}, False),
        ({"understood": "0"}, False),
        ({"understood": "on"}, True),
        ({"understood": "x"}, True),
    ],
)
async def test_checkboxes(posted: dict[str, str], ticked: bool) -> None:
    async with AsyncTestClient(_app()) as client:
        read = (await client.post("/delete", data=posted)).json()
        assert read == {"password": "", "understood": ticked}


def test_a_field_without_a_limit_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Undeclared\.count"):
        posted_fields(Undeclared)
