"""The sign-in forms as they arrive: each a frozen struct read from the urlencoded (or
multipart) body by `read(request)`, declared once as its fields with their limits
(`PostedForm`: a `str` field annotated with `Text(limit)`, a `bool` field a checkbox).

Reading by hand instead of Litestar's `data: Annotated[Form, Body(...)]`: a field missing or
of the wrong shape is an empty string here, so a hostile or truncated post gets the page's
own message, never a framework 400; the widget's `g-recaptcha-response` is not a Python
name; every value is cut to a sane length before anything looks at it (a password is
cut just past the policy's 1,024 bytes so the policy, not this module, refuses it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Self, get_type_hints

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


@dataclass(frozen=True)
class Text:
    """A posted text value cut to `limit` characters; `name` is the posted name when it is
    not the field's own."""

    limit: int
    name: str = ""


@cache
def posted_fields(form: type[PostedForm]) -> tuple[tuple[str, str, Text | None], ...]:
    """(field, posted name, Text or None for a checkbox) for each field of a form."""
    posted: list[tuple[str, str, Text | None]] = []
    for field, hint in get_type_hints(form, include_extras=True).items():
        text = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Text)), None)
        if text is None and hint is not bool:
            raise TypeError(f"{form.__name__}.{field}: a str with Text(limit) or a bool")
        posted.append((field, (text.name if text else "") or field, text))
    return tuple(posted)


class PostedForm(msgspec.Struct, frozen=True, kw_only=True):
    """A form read from the body by its fields' declarations (missing values are empty)."""

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Self:
        f = await Fields.of(request)
        values = {
            field: f.checked(name) if text is None else f.text(name, text.limit)
            for field, name, text in posted_fields(cls)
        }
        return msgspec.convert(values, cls)


class SignupForm(PostedForm, frozen=True, kw_only=True):
    email: Annotated[str, Text(EMAIL_CHARS)]
    password: Annotated[str, Text(PASSWORD_CHARS)]
    first_name: Annotated[str, Text(NAME_CHARS)]
    last_name: Annotated[str, Text(NAME_CHARS)]
    newsletter: bool
    captcha: Annotated[str, Text(TOKEN_CHARS, name=TOKEN_FIELD)]


class LoginForm(PostedForm, frozen=True, kw_only=True):
    email: Annotated[str, Text(EMAIL_CHARS)]
    password: Annotated[str, Text(PASSWORD_CHARS)]
    next: Annotated[str, Text(NEXT_CHARS)]
    captcha: Annotated[str, Text(TOKEN_CHARS, name=TOKEN_FIELD)]


class CodeForm(PostedForm, frozen=True, kw_only=True):
    """A code typed (the e-mailed one, a TOTP or a recovery code), with the address when the
    page asked for it and the password when a re-authentication is due."""

    code: Annotated[str, Text(CODE_CHARS)]
    email: Annotated[str, Text(EMAIL_CHARS)]
    password: Annotated[str, Text(PASSWORD_CHARS)]


class EmailForm(PostedForm, frozen=True, kw_only=True):
    email: Annotated[str, Text(EMAIL_CHARS)]


class ResetForm(PostedForm, frozen=True, kw_only=True):
    token: Annotated[str, Text(256)]
    password: Annotated[str, Text(PASSWORD_CHARS)]


class PasswordChangeForm(PostedForm, frozen=True, kw_only=True):
    current_password: Annotated[str, Text(PASSWORD_CHARS)]
    new_password: Annotated[str, Text(PASSWORD_CHARS)]


class ReauthForm(PostedForm, frozen=True, kw_only=True):
    """Only the password of a re-authentication (the forms whose one field it is)."""

    password: Annotated[str, Text(PASSWORD_CHARS)]


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
