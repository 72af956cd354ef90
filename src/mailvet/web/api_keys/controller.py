"""/app/api-keys: the signed-in account's API keys.

- the list: label, id, scopes, created, expires, last used, revoked (never a secret: only
  its digest is stored);
- "Create a key": a label, an optional expiry date (valid until the end of that day, UTC)
  and the scopes (all ticked to begin with; at least one). Making a key is a sensitive
  change, so it asks for the password again when the sign-in is older than 10 minutes,
  exactly as the security pages do (web/auth/common.py `reauthentication`,
  `reauth_refusal`: a wrong password counts as a failed sign-in, 429 once they are spent);
  the new key is shown once, on a page that is not cached, and never again;
- "Revoke": the key is refused by the API from the next request on. Only the account's own
  keys (another's id is "no such key").

Every form carries the CSRF token (the app's CSRF config covers every POST outside /api);
thin handlers: read the form, call services/api_keys.py in one transaction, render or
redirect (303) with a flash message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import structlog
from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_400_BAD_REQUEST, HTTP_429_TOO_MANY_REQUESTS

from mailvet.domain import api_keys as rules
from mailvet.domain.accounts import Account
from mailvet.services import api_keys
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

log = structlog.get_logger(__name__)

API_KEYS_PAGE = "/app/api-keys"
TEMPLATE = "api_keys/keys.html"
# the scope checkboxes: (posted name, scope, what it allows)
SCOPE_FIELDS = (
    ("scope_validate", rules.Scope.VALIDATE, "check addresses (validate)"),
    ("scope_jobs_read", rules.Scope.JOBS_READ, "read lists and their results (jobs:read)"),
    ("scope_jobs_write", rules.Scope.JOBS_WRITE, "upload and delete lists (jobs:write)"),
)
DATE_CHARS = 32


class ApiKeysController(Controller):
    path = API_KEYS_PAGE
    include_in_schema = False
    guards = [requires_login]

    @get("/", name="api_keys_page")
    async def show(self, request: Request[Any, Any, Any], web: Web) -> Template:
        account = await signed_in_account(request, web)
        return await _page(request, web, account)

    @post("/", status_code=HTTP_200_OK)
    async def create(self, request: Request[Any, Any, Any], web: Web, auth: Auth) -> Template:
        account = await signed_in_account(request, web)
        fields = await Fields.of(request)
        label_text = fields.text("label", rules.LABEL_MAX + 100)
        expires_text = fields.text("expires", DATE_CHARS)
        ticked = [name for name, _scope, _text in SCOPE_FIELDS if fields.checked(name)]
        form: dict[str, Any] = {"label": label_text, "expires": expires_text, "scopes": ticked}
        errors: dict[str, str] = {}
        label, expires_at = "", None
        try:
            label = rules.clean_label(label_text)
        except rules.InvalidApiKeyInput as problem:
            errors["label"] = str(problem)
        try:
            expires_at = rules.parse_expiry(expires_text) if expires_text.strip() else None
        except rules.InvalidApiKeyInput as problem:
            errors["expires"] = str(problem)
        chosen = [scope.value for name, scope, _text in SCOPE_FIELDS if name in ticked]
        if not chosen:
            errors["scopes"] = "Tick at least one scope."
        if errors:
            return await _page(request, web, account, form=form, errors=errors)
        check = await reauthentication(
            request, web, auth, account, fields.text("password", PASSWORD_CHARS)
        )
        if not check.ok:
            return await _page(
                request,
                web,
                account,
                form=form,
                errors={"password": reauth_refusal(account, check)} if account.has_password else {},
                error="" if account.has_password else reauth_refusal(account, check),
                retry_after=check.retry_after,
            )
        try:
            async with unit_of_work(web, write=True) as session:
                made = await api_keys.create_key(
                    session,
                    account.id,
                    label=label,
                    scopes=chosen,
                    expires_at=expires_at,
                    now=web.clock(),
                )
        except rules.InvalidApiKeyInput as problem:  # too many live keys
            return await _page(request, web, account, form=form, error=str(problem))
        return await _page(request, web, account, new_key=made.key, new_info=made.info)

    @post("/{key_id:str}/revoke", status_code=HTTP_200_OK)
    async def revoke(
        self, request: Request[Any, Any, Any], web: Web, key_id: FromPath[str]
    ) -> Redirect:
        account = await signed_in_account(request, web)
        async with unit_of_work(web, write=True) as session:
            revoked = await api_keys.revoke_key(
                session, key_id, now=web.clock(), account_id=account.id
            )
        if revoked is None:
            flash(request, "There is no such key.", "error")
        else:
            flash(request, f"The key “{revoked.label}” is revoked.", "success")
        return see_other(API_KEYS_PAGE)


async def _page(
    request: Request[Any, Any, Any],
    web: WebContext,
    account: Account,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str = "",
    retry_after: int = 0,
    new_key: str = "",
    new_info: api_keys.ApiKeyInfo | None = None,
) -> Template:
    """The page: 200; 400 with the form's errors; 429 with Retry-After when the password
    tries are spent; with `new_key` the key made just now (not cached)."""
    async with web.database.session_maker() as session:
        keys = await api_keys.list_keys(session, account.id)
    context = {
        "account": account,
        "keys": keys,
        "now": web.clock(),
        "scope_fields": SCOPE_FIELDS,
        "form": form or {"label": "", "expires": "", "scopes": [n for n, _s, _t in SCOPE_FIELDS]},
        "errors": errors or {},
        "error": error,
        "reauth": reauthentication_due(request, web),
        "reauth_google": f"/auth/google?next={quote(request.url.path, safe='')}",
        "new_key": new_key,
        "new_info": new_info,
        "max_label": rules.LABEL_MAX,
    }
    if retry_after:
        return Template(
            TEMPLATE,
            context=context,
            status_code=HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(retry_after)},
        )
    failed = bool(errors or error)
    return Template(
        TEMPLATE,
        context=context,
        status_code=HTTP_400_BAD_REQUEST if failed else HTTP_200_OK,
        headers=NO_STORE,
    )
