"""The account page's forms as they arrive, read by hand like the sign-in forms
(web/auth/schemas.py: a missing or odd field is an empty string, never a framework 400)."""

from __future__ import annotations

from typing import Any, Self

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile

from mailvet.adapters.images import MAX_AVATAR_BYTES
from mailvet.web.auth.schemas import NAME_CHARS, PASSWORD_CHARS, Fields

PICTURE_FIELD = "picture"


class ProfileForm(msgspec.Struct, frozen=True, kw_only=True):
    first_name: str
    last_name: str
    newsletter: bool

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Self:
        f = await Fields.of(request)
        return cls(
            first_name=f.text("first_name", NAME_CHARS),
            last_name=f.text("last_name", NAME_CHARS),
            newsletter=f.checked("newsletter"),
        )


class DeleteForm(msgspec.Struct, frozen=True, kw_only=True):
    """Deleting the account: the password (accounts with one) and the ticked box."""

    password: str
    understood: bool

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Self:
        f = await Fields.of(request)
        return cls(password=f.text("password", PASSWORD_CHARS), understood=f.checked("understood"))


async def read_picture(request: Request[Any, Any, Any]) -> bytes | None:
    """The uploaded picture's bytes (at most one byte over the limit, so the image rules can
    say it is too large), or None when no file came."""
    form = await request.form()
    for name, value in form.multi_items():
        if name == PICTURE_FIELD and isinstance(value, UploadFile):
            try:
                data = await value.read(MAX_AVATAR_BYTES + 1)
            finally:
                await value.close()
            return data or None
    return None
