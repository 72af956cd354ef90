"""The CSRF check of the upload form, by Litestar's own CSRFMiddleware.

The upload post is exempt from the middleware (`exclude_from_csrf`): to find the token in a
multipart body the middleware parses the whole body through Litestar's form parser, which
would spool the 200 MiB file before any check. web/jobs/upload.py reads the body itself
and calls `token_valid` with the form's `_csrf_token` as soon as the file part begins (the
form sends the token first), so nothing of the file is kept for a forged post.

`token_valid` runs the middleware itself on a request of its own: the same cookie, the
form's token as the CSRF header, no body. Litestar has no public function for the token
check; running its middleware keeps the check exactly Litestar's (token format, signature,
comparison) when Litestar changes it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Request
from litestar.exceptions import PermissionDeniedException
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import HTTPRequestEvent, Message, Receive, Scope, Send

_NEVER_EXCLUDED = "_mailvet_csrf_check"  # an opt key no handler sets


async def token_valid(request: Request[Any, Any, Any], token: str | None) -> bool:
    """Does `token` (a form's `_csrf_token`) pass the app's CSRF check for `request`'s
    cookie? True when the app has no CSRF protection."""
    config = request.app.csrf_config
    if config is None:
        return True
    if not token or not token.isascii() or not token.isprintable():
        return False
    passed = False

    async def accepted(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal passed
        passed = True

    headers = [(name, value) for name, value in request.scope["headers"] if name == b"cookie"]
    headers.append((config.header_name.lower().encode(), token.encode()))
    scope: Any = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": request.scope.get("scheme", "http"),
        "path": request.scope["path"],
        "raw_path": request.scope["path"].encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "state": {},
        "app": request.scope["app"],
        "litestar_app": request.scope["litestar_app"],
    }
    checker = CSRFMiddleware(
        app=accepted,
        config=dataclasses.replace(config, exclude=None, exclude_from_csrf_key=_NEVER_EXCLUDED),
    )
    try:
        await checker(scope, _no_body, _nothing_sent)
    except PermissionDeniedException:
        return False
    return passed


async def _no_body() -> HTTPRequestEvent:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _nothing_sent(message: Message) -> None:
    raise RuntimeError("the CSRF check sends nothing")
