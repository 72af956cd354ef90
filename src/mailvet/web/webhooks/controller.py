"""/app/webhooks: the signed-in account's completion webhooks.

- "Default URL": where the events of its jobs go (a job started through the API with its
  own `callback_url` goes there instead). Saved once services/webhooks.py `check_url` takes
  it (https or http, no credentials in it, a host resolving only to public addresses unless
  MAILVET_WEBHOOK_ALLOW_PRIVATE); empty removes it.
- "Signing secret": shown to its owner (it is the HMAC key of `Mailvet-Signature`, to be
  copied into the receiver). "Rotate" makes a new one, which signs every attempt from then
  on; a sensitive change, so it asks for the password again when the sign-in is older than
  10 minutes, as the API keys page does (web/auth/common.py `reauthentication`).
- "Recent deliveries": the latest events, their state, and each attempt (time, status code
  or error).

Every form carries the CSRF token; thin handlers: read the form, call services/webhooks.py
in one transaction, render or redirect (303) with a flash message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import SkipValidation
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_400_BAD_REQUEST, HTTP_429_TOO_MANY_REQUESTS

from mailvet.domain import webhooks as rules
from mailvet.domain.accounts import Account
from mailvet.services import webhooks
from mailvet.services.webhooks import HostResolver
from mailvet.web.auth.common import (
    NO_STORE,
    reauth_refusal,
    reauthentication,
    reauthentication_due,
    see_other,
    unit_of_work,
)
from mailvet.web.auth.ports import Auth
from mailvet.web.auth.schemas import PASSWORD_CHARS, Fields
from mailvet.web.context import Web, WebContext
from mailvet.web.sessions import flash, requires_login, signed_in_account

Resolver = NamedDependency[SkipValidation[HostResolver]]
WEBHOOKS_PAGE = "/app/webhooks"
TEMPLATE = "webhooks/webhooks.html"


class WebhooksController(Controller):
    path = WEBHOOKS_PAGE
    include_in_schema = False
    guards = [requires_login]

    @get("/", name="webhooks_page")
    async def show(self, request: Request[Any, Any, Any], web: Web) -> Template:
        account = await signed_in_account(request, web)
        return await _page(request, web, account)

    @post("/", status_code=HTTP_200_OK)
    async def save_url(
        self, request: Request[Any, Any, Any], web: Web, resolver: Resolver
    ) -> Template | Redirect:
        account = await signed_in_account(request, web)
        fields = await Fields.of(request)
        text = fields.text("url", rules.MAX_URL + 100)
        try:
            async with unit_of_work(web, write=True) as session:
                url = await webhooks.set_default_url(
                    session,
                    account.id,
                    text,
                    resolver,
                    allow_private=web.settings.webhooks.allow_private,
                    now=web.clock(),
                )
        except rules.InvalidWebhookUrl as problem:
            return await _page(request, web, account, url_text=text, errors={"url": str(problem)})
        flash(
            request,
            "The webhook URL is saved." if url else "The webhook URL is removed.",
            "success",
        )
        return see_other(WEBHOOKS_PAGE)

    @post("/rotate", status_code=HTTP_200_OK)
    async def rotate(self, request: Request[Any, Any, Any], web: Web, auth: Auth) -> Template:
        account = await signed_in_account(request, web)
        fields = await Fields.of(request)
        check = await reauthentication(
            request, web, auth, account, fields.text("password", PASSWORD_CHARS)
        )
        if not check.ok:
            return await _page(
                request,
                web,
                account,
                errors={"password": reauth_refusal(account, check)} if account.has_password else {},
                error="" if account.has_password else reauth_refusal(account, check),
                retry_after=check.retry_after,
            )
        async with unit_of_work(web, write=True) as session:
            await webhooks.rotate_secret(session, account.id, now=web.clock())
        return await _page(request, web, account, rotated=True)


async def _page(
    request: Request[Any, Any, Any],
    web: WebContext,
    account: Account,
    *,
    url_text: str | None = None,
    errors: dict[str, str] | None = None,
    error: str = "",
    retry_after: int = 0,
    rotated: bool = False,
) -> Template:
    """The page: 200; 400 with the form's errors; 429 with Retry-After when the password
    tries are spent. Never cached: it shows the secret."""
    async with unit_of_work(web, write=True) as session:  # the secret is made on first need
        hook = await webhooks.endpoint(session, account.id, now=web.clock())
        deliveries = await webhooks.recent_deliveries(session, account.id)
    context = {
        "account": account,
        "url": hook.url if url_text is None else url_text,
        "secret": hook.secret,
        "deliveries": deliveries,
        "errors": errors or {},
        "error": error,
        "rotated": rotated,
        "max_url": rules.MAX_URL,
        "timeout": web.settings.webhooks.timeout,
        "reauth": reauthentication_due(request, web),
        "reauth_google": f"/auth/google?next={quote(request.url.path, safe='')}",
    }
    headers = dict(NO_STORE)
    status = HTTP_400_BAD_REQUEST if (errors or error) else HTTP_200_OK
    if retry_after:
        status = HTTP_429_TOO_MANY_REQUESTS
        headers["Retry-After"] = str(retry_after)
    return Template(TEMPLATE, context=context, status_code=status, headers=headers)
