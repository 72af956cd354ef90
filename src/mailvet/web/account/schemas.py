"""The account page's forms as they arrive, read by hand like the sign-in forms
(web/auth/schemas.py: a missing or odd field is an empty string, never a framework 400)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.datastructures import UploadFile

from mailvet.adapters.images import MAX_AVATAR_BYTES
from mailvet.web.auth.schemas import NAME_CHARS, PASSWORD_CHARS, PostedForm, Text

PICTURE_FIELD = "picture"


class ProfileForm(PostedForm, frozen=True, kw_only=True):
    first_name: Annotated[str, Text(NAME_CHARS)]
    last_name: Annotated[str, Text(NAME_CHARS)]
    newsletter: bool


class DeleteForm(PostedForm, frozen=True, kw_only=True):
    """Deleting the account: the password (accounts with one) and the ticked box."""

    password: Annotated[str, Text(PASSWORD_CHARS)]
    understood: bool


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
