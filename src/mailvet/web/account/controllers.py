"""/app/account: the account page of a signed-in user.

- names and the newsletter opt-in (`AccountService.update_profile`);
- the picture: an upload (at most 2 MB; its type sniffed from the bytes, re-encoded without
  metadata by adapters/images.py, off the event loop) stored in the object storage under
  `avatars/<account>/<random>.webp` and served back by /app/account/picture to its owner
  only; without one the Google picture, then Gravatar (domain/identity.py);
- links to the password and two-factor pages (web/auth/account_pages.py), the Google
  connection (connect through Google sign-in, which links an account with the same verified
  address; disconnect while a password remains);
- "delete my account": the password again (an account without one: a sign-in with Google
  within the last 10 minutes) and a ticked box; `AccountService.delete_account` removes its
  files and sessions, keeps its job rows without file names; the browser is signed out.

Thin handlers: each reads its form, calls one use case in one transaction, and redirects
(303) to the page with a flash message, or shows the page again with the form's error.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import quote

import structlog
from litestar import Controller, Request, get, post
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_200_OK, HTTP_400_BAD_REQUEST, HTTP_429_TOO_MANY_REQUESTS

from mailvet.adapters.images import MAX_AVATAR_BYTES, ImageRefused, process_avatar
from mailvet.domain.accounts import Account
from mailvet.domain.identity import gravatar_url
from mailvet.domain.ports import ObjectNotFound, ObjectStorage
from mailvet.services import accounts as account_service
from mailvet.web.account.schemas import DeleteForm, ProfileForm, read_picture
from mailvet.web.auth.common import (
    NO_STORE,
    reauth_refusal,
    reauthentication_due,
    see_other,
    unit_of_work,
)
from mailvet.web.auth.ports import Auth, AuthPorts
from mailvet.web.context import Web, WebContext
from mailvet.web.deps import Storage
from mailvet.web.sessions import (
    flash,
    requires_login,
    sign_out,
    signed_in_account,
)

log = structlog.get_logger(__name__)

ACCOUNT_PAGE = "/app/account"
PICTURE_PATH = "/app/account/picture"
AVATAR_PREFIX = "avatars"
# the picture's form: the file, its multipart framing and the CSRF field
PICTURE_BODY_LIMIT = MAX_AVATAR_BYTES + 64 * 1024
NO_PICTURE = "Choose a picture to upload."
DELETE_FIELD = "delete"  # the error key of the deletion form


def avatar_key(account_id: str) -> str:
    return f"{AVATAR_PREFIX}/{account_id}/{uuid.uuid4().hex}.webp"


def picture_url(account: Account) -> str:
    """What the page shows: the uploaded avatar (its key in the URL, so a new one is not
    hidden by the cache), else the Google picture, else Gravatar."""
    if account.avatar_key:
        version = account.avatar_key.rsplit("/", 1)[-1].split(".", 1)[0]
        return f"{PICTURE_PATH}?v={quote(version)}"
    if account.google_picture:
        return account.google_picture
    return gravatar_url(account.email, size=160)


class AccountController(Controller):
    path = ACCOUNT_PAGE
    include_in_schema = False
    guards = [requires_login]

    @get("/", name="account_page")
    async def show(self, request: Request[Any, Any, Any], web: Web, auth: Auth) -> Template:
        account = await signed_in_account(request, web)
        return _page(request, web, auth, account)

    @post("/profile", status_code=HTTP_200_OK)
    async def profile(self, request: Request[Any, Any, Any], web: Web, auth: Auth) -> Redirect:
        account = await signed_in_account(request, web)
        form = await ProfileForm.read(request)
        async with unit_of_work(web) as session:
            await auth.accounts.update_profile(
                session,
                account.id,
                first_name=form.first_name,
                last_name=form.last_name,
                newsletter=form.newsletter,
            )
        flash(request, "Your details are saved.", "success")
        return see_other(ACCOUNT_PAGE)

    @post("/picture", status_code=HTTP_200_OK, request_max_body_size=PICTURE_BODY_LIMIT)
    async def upload_picture(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth, storage: Storage
    ) -> Template | Redirect:
        account = await signed_in_account(request, web)
        data = await read_picture(request)
        if data is None:
            return _page(request, web, auth, account, errors={"picture": NO_PICTURE})
        try:
            avatar = await asyncio.to_thread(process_avatar, data)
        except ImageRefused as refused:
            log.info("avatar_refused", account_id=account.id, reason=refused.reason)
            return _page(request, web, auth, account, errors={"picture": str(refused)})
        key = avatar_key(account.id)
        await storage.put_bytes(key, avatar.data)
        try:
            async with unit_of_work(web) as session:
                previous = await auth.accounts.set_avatar_key(session, account.id, key)
        except BaseException:
            await storage.delete_prefix(key)
            raise
        if previous:
            await storage.delete_prefix(previous)
        log.info("avatar_set", account_id=account.id, width=avatar.width, height=avatar.height)
        flash(request, "Your picture is saved.", "success")
        return see_other(ACCOUNT_PAGE)

    @post("/picture/remove", status_code=HTTP_200_OK)
    async def remove_picture(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth, storage: Storage
    ) -> Redirect:
        account = await signed_in_account(request, web)
        async with unit_of_work(web) as session:
            previous = await auth.accounts.set_avatar_key(session, account.id, None)
        if previous:
            await storage.delete_prefix(previous)
            flash(request, "Your picture is removed.", "success")
        return see_other(ACCOUNT_PAGE)

    @get("/picture", name="account_picture")
    async def picture(
        self, request: Request[Any, Any, Any], web: Web, storage: Storage
    ) -> Response[bytes] | Redirect:
        """The signed-in account's own avatar (no one else's: there is no id to guess);
        without one, where `picture_url` points instead."""
        account = await signed_in_account(request, web)
        if not account.avatar_key:
            return Redirect(picture_url(account))
        data = await _stored(storage, account.avatar_key)
        if data is None:
            return Redirect(gravatar_url(account.email, size=160))
        return Response(
            data,
            media_type="image/webp",
            headers={"Cache-Control": "private, max-age=86400"},
        )

    @post("/google/disconnect", status_code=HTTP_200_OK)
    async def disconnect_google(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        account = await signed_in_account(request, web)
        async with unit_of_work(web) as session:
            done = await auth.accounts.unlink_google(session, account.id)
        if not done:
            return _page(
                request,
                web,
                auth,
                account,
                errors={"google": "Set a password first: Google is your only way to sign in."},
            )
        log.info("google_unlinked", account_id=account.id)
        flash(request, "Google is disconnected from your account.", "success")
        return see_other(ACCOUNT_PAGE)

    @post("/delete", status_code=HTTP_200_OK)
    async def delete(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        account = await signed_in_account(request, web)
        form = await DeleteForm.read(request)
        errors: dict[str, str] = {}
        retry_after = 0
        if not form.understood:
            errors["understood"] = "Tick the box to confirm that everything goes."
        if account.has_password:
            if not form.password:
                errors[DELETE_FIELD] = "Enter your password."
            elif not errors:
                # committed whatever the answer: a wrong password counts as a failed sign-in
                async with unit_of_work(web) as session:
                    check = await auth.accounts.check_password(session, account.id, form.password)
                if not check.ok:
                    errors[DELETE_FIELD] = reauth_refusal(account, check)
                    retry_after = check.retry_after
        elif reauthentication_due(request, web):
            errors[DELETE_FIELD] = "Sign in with Google again first (the link above)."
        if errors:
            return _page(request, web, auth, account, errors=errors, retry_after=retry_after)
        try:
            async with unit_of_work(web) as session:
                await auth.accounts.delete_account(session, account.id)
        except account_service.AccountBusy as exc:  # a job of the account is running
            return _page(request, web, auth, account, errors={DELETE_FIELD: exc.message})
        sign_out(request)
        flash(request, "Your account and its files are deleted.", "success")
        return see_other("/")


async def _stored(storage: ObjectStorage, key: str) -> bytes | None:
    try:
        return await storage.get_bytes(key)
    except ObjectNotFound:
        return None


def _page(
    request: Request[Any, Any, Any],
    web: WebContext,
    auth: AuthPorts,
    account: Account,
    *,
    errors: dict[str, str] | None = None,
    retry_after: int = 0,
) -> Template:
    """The account page (400 when a form of it has `errors`; 429 with Retry-After when
    `retry_after` is set: the sign-in failures of the address are spent)."""
    status = HTTP_400_BAD_REQUEST if errors else HTTP_200_OK
    headers = dict(NO_STORE)
    if retry_after:
        status = HTTP_429_TOO_MANY_REQUESTS
        headers["Retry-After"] = str(retry_after)
    return Template(
        "account/account.html",
        context={
            "account": account,
            "picture": picture_url(account),
            "has_avatar": bool(account.avatar_key),
            "google_configured": auth.oidc is not None,
            "connect_google": f"/auth/google?next={quote(ACCOUNT_PAGE, safe='')}",
            "reauth": reauthentication_due(request, web),
            "max_picture_mb": MAX_AVATAR_BYTES // (1024 * 1024),
            "errors": errors or {},
        },
        status_code=status,
        headers=headers,
    )
