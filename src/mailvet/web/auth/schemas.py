"""The sign-in forms as they arrive: each a frozen struct read from the urlencoded (or
multipart) body by `read(request)`.

Reading by hand instead of Litestar's `data: Annotated[Form, Body(...)]`: a field missing or
of the wrong shape is an empty string here, so a hostile or truncated post gets the page's
own message, never a framework 400; the widget's `g-recaptcha-response` is not a Python
name; every value is cut to a sane length before anything looks at it (a password is
cut just past the policy's 1,024 bytes so the policy, not this module, refuses it).
"""

from __future__ import annotations

from typing import Any, Self

import msgspec
from litestar import Request

from mailvet.adapters.captcha import TOKEN_FIELD
from mailvet.domain.accounts import MAX_EMAIL_LENGTH, MAX_NAME_LENGTH
from mailvet.domain.passwords import MAX_BYTES

EMAIL_CHARS = MAX_EMAIL_LENGTH + 66  # a little over: the address rules say what is wrong
PASSWORD_CHARS = MAX_BYTES + 1
NAME_CHARS = MAX_NAME_LENGTH * 2
CODE_CHARS = 64
TOKEN_CHARS = 8192
NEXT_CHARS = 2048


class Fields:
    """The text values of a posted form (the first of a repeated name; files ignored)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    @classmethod
    async def of(cls, request: Request[Any, Any, Any]) -> Fields:
        form = await request.form()
        values: dict[str, str] = {}
        for name, value in form.multi_items():
            if isinstance(value, str) and name not in values:
                values[name] = value
        return cls(values)

    def text(self, name: str, limit: int) -> str:
        return self.values.get(name, "")[:limit]

    def checked(self, name: str) -> bool:
        return self.values.get(name, "") not in ("", "0", "off", "false")


class SignupForm(msgspec.Struct, frozen=True, kw_only=True):
    email: str
    password: str
    first_name: str
    last_name: str
    newsletter: bool
    captcha: str

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Self:
        f = await Fields.of(request)
        return cls(
            email=f.text("email", EMAIL_CHARS),
            password=f.text("password", PASSWORD_CHARS),
            first_name=f.text("first_name", NAME_CHARS),
            last_name=f.text("last_name", NAME_CHARS),
            newsletter=f.checked("newsletter"),
            captcha=f.text(TOKEN_FIELD, TOKEN_CHARS),
        )


class LoginForm(msgspec.Struct, frozen=True, kw_only=True):
    email: str
    password: str
    next: str
    captcha: str

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Self:
        f = await Fields.of(request)
        return cls(
            email=f.text("email", EMAIL_CHARS),
            password=f.text("password", PASSWORD_CHARS),
            next=f.text("next", NEXT_CHARS),
            captcha=f.text(TOKEN_FIELD, TOKEN_CHARS),
        )


class CodeForm(msgspec.Struct, frozen=True, kw_only=True):
    """A code typed (the e-mailed one, a TOTP or a recovery code), with the address when the
    page asked for it and the password when a re-authentication is due."""

    code: str
    email: str
    password: str

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Self:
        f = await Fields.of(request)
        return cls(
            code=f.text("code", CODE_CHARS),
            email=f.text("email", EMAIL_CHARS),
            password=f.text("password", PASSWORD_CHARS),
        )


class EmailForm(msgspec.Struct, frozen=True, kw_only=True):
    email: str

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Self:
        f = await Fields.of(request)
        return cls(email=f.text("email", EMAIL_CHARS))


class ResetForm(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    password: str

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Self:
        f = await Fields.of(request)
        return cls(token=f.text("token", 256), password=f.text("password", PASSWORD_CHARS))


class PasswordChangeForm(msgspec.Struct, frozen=True, kw_only=True):
    current_password: str
    new_password: str

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Self:
        f = await Fields.of(request)
        return cls(
            current_password=f.text("current_password", PASSWORD_CHARS),
            new_password=f.text("new_password", PASSWORD_CHARS),
        )


class ReauthForm(msgspec.Struct, frozen=True, kw_only=True):
    """Only the password of a re-authentication (the forms whose one field it is)."""

    password: str

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Self:
        f = await Fields.of(request)
        return cls(password=f.text("password", PASSWORD_CHARS))


def safe_next(target: str, default: str = "/app") -> str:
    """Where to go after signing in: a path of this site only (`/x`, never `//host`,
    `/\\host` or a scheme), else `default`."""
    if (
        not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(c in target for c in "\\\r\n\t")
        or not target.isprintable()
    ):
        return default
    return target
