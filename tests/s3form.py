"""Post an S3 upload form (the storage's pre-signed POST) as a browser does, and read its
policy document back.

    form = storage.presigned_post(key, max_bytes=..., redirect=..., expires=...)
    answer = await post_form(form.url, form.fields, ("list.csv", b"..."))

The fields go in their order and the file last, in one multipart/form-data body (S3 ignores
fields after the file). No redirect is followed: the test looks at S3's 303 itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx


async def post_form(
    url: str,
    fields: Sequence[tuple[str, str]],
    file: tuple[str, bytes],
    *,
    values: Mapping[str, str] | None = None,
    file_field: str = "file",
) -> httpx.Response:
    """POST `fields` (with `values` put in place of theirs, as the page's script fills the
    metadata fields) then `file` as (name, content) to `url`."""
    chosen = values or {}
    parts: list[tuple[str, Any]] = [
        (name, (None, chosen.get(name, value).encode())) for name, value in fields
    ]
    name, content = file
    parts.append((file_field, (name, content, "application/octet-stream")))
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url, files=parts)


def policy_of(fields: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The policy document of a form's `policy` field."""
    document = json.loads(base64.b64decode(dict(fields)["policy"]))
    assert isinstance(document, dict)
    return document
