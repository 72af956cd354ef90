"""The security pages of a signed-in account: /app/account/two-factor and
/app/account/password (the account page itself, /app/account, is web/account/).

Two-factor authentication (TOTP, services/accounts.py keeps the secret encrypted):
- "Turn on" makes a new secret and shows it as a QR code (SVG drawn on the server,
  adapters/qr.py) beside the secret as text for manual entry; the first code of it turns
  TOTP on and shows the 10 recovery codes once (with a download of them as a text file,
  made in the page: the codes are never kept anywhere but as digests);
- new recovery codes (the old ones stop working), and turning it off, which also needs a
  current code (or a recovery code).

Re-authentication: turning TOTP on or off, new recovery codes and setting a first password
ask for the password again when the sign-in is older than 10 minutes (an account without a
password signs in with Google again instead); a right password renews the sign-in's time
(and its session token). Changing a password always asks for the current one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import structlog
from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_400_BAD_REQUEST, HTTP_429_TOO_MANY_REQUESTS

from mailvet.domain.accounts import Account
from mailvet.services.accounts import AccountError, InvalidInput, PasswordCheck
from mailvet.web.auth.common import (
    NO_STORE,
    page,
    reauth_refusal,
    reauthentication,
    reauthentication_due,
    see_other,
    unit_of_work,
)
from mailvet.web.auth.ports import Auth, AuthPorts
from mailvet.web.auth.schemas import CodeForm, PasswordChangeForm, ReauthForm
from mailvet.web.context import Web, WebContext
from mailvet.web.sessions import (
    current_token_hash,
    flash,
    requires_login,
    sign_in,
    signed_in_account,
)

log = structlog.get_logger(__name__)

TWO_FACTOR = "/app/account/two-factor"
PASSWORD_PAGE = "/app/account/password"  # noqa: S105 (a path)
CODES_FILE = "mailvet-recovery-codes.txt"


def _context(
    request: Request[Any, Any, Any], web: WebContext, account: Account, **more: Any
) -> dict[str, Any]:
    return {
        "account": account,
        "reauth": reauthentication_due(request, web),
        "reauth_google": f"/auth/google?next={quote(request.url.path, safe='')}",
        "error": "",
        "errors": {},
        **more,
    }


class TwoFactorController(Controller):
    path = TWO_FACTOR
    include_in_schema = False
    guards = [requires_login]

    @get("/", name="two_factor_settings")
    async def overview(self, request: Request[Any, Any, Any], web: Web, auth: Auth) -> Template:
        account = await signed_in_account(request, web)
        return await _settings_page(request, web, auth, account)

    @post("/setup", status_code=HTTP_200_OK)
    async def setup(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        account = await signed_in_account(request, web)
        form = await ReauthForm.read(request)
        if account.totp_enabled:
            return see_other(TWO_FACTOR)
        refused = await _unless_reauthenticated(request, web, auth, account, form.password)
        if refused is not None:
            return refused
        try:
            async with unit_of_work(web) as session:
                setup = await auth.accounts.start_totp(session, account.id)
        except AccountError:
            return see_other(TWO_FACTOR)
        return _setup_page(request, web, account, setup.secret, setup.uri)

    @post("/enable", status_code=HTTP_200_OK)
    async def enable(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        account = await signed_in_account(request, web)
        form = await CodeForm.read(request)
        if account.totp_enabled:
            return see_other(TWO_FACTOR)
        async with unit_of_work(web) as session:
            codes = await auth.accounts.enable_totp(session, account.id, form.code)
        if codes is None:
            async with web.database.session_maker() as session:
                pending = await auth.accounts.pending_totp(session, account.id)
            if pending is None:  # nothing set up (or set up in another tab and lost)
                return see_other(TWO_FACTOR)
            return _setup_page(
                request,
                web,
                account,
                pending.secret,
                pending.uri,
                errors={"code": "This code is not right. Type the code your app shows now."},
                status_code=HTTP_400_BAD_REQUEST,
            )
        flash(request, "Two-factor authentication is on.", "success")
        return _codes_page(request, web, account, codes)

    @post("/recovery-codes", status_code=HTTP_200_OK)
    async def regenerate(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        account = await signed_in_account(request, web)
        form = await ReauthForm.read(request)
        if not account.totp_enabled:
            return see_other(TWO_FACTOR)
        refused = await _unless_reauthenticated(request, web, auth, account, form.password)
        if refused is not None:
            return refused
        async with unit_of_work(web) as session:
            codes = await auth.accounts.regenerate_recovery_codes(session, account.id)
        log.info("recovery_codes_regenerated", account_id=account.id)
        return _codes_page(request, web, account, codes)

    @post("/disable", status_code=HTTP_200_OK)
    async def disable(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        account = await signed_in_account(request, web)
        form = await CodeForm.read(request)
        if not account.totp_enabled:
            return see_other(TWO_FACTOR)
        refused = await _unless_reauthenticated(request, web, auth, account, form.password)
        if refused is not None:
            return refused
        async with unit_of_work(web) as session:
            off = await auth.accounts.disable_totp(session, account.id, form.code)
        if not off:
            return await _settings_page(
                request,
                web,
                auth,
                account,
                errors={"code": "This code is not right (or was used already)."},
            )
        flash(request, "Two-factor authentication is off.", "success")
        return see_other(TWO_FACTOR)


class PasswordSettingsController(Controller):
    path = PASSWORD_PAGE
    include_in_schema = False
    guards = [requires_login]

    @get("/", name="password_settings")
    async def form(self, request: Request[Any, Any, Any], web: Web) -> Template:
        account = await signed_in_account(request, web)
        return page("password.html", _context(request, web, account))

    @post("/", status_code=HTTP_200_OK)
    async def change(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        account = await signed_in_account(request, web)
        form = await PasswordChangeForm.read(request)
        context = _context(request, web, account)
        if not account.has_password and context["reauth"]:
            context["error"] = "Sign in with Google again before you set a password."
            return page("password.html", context, status_code=HTTP_400_BAD_REQUEST)
        try:
            # committed also when the current password is wrong: the failure is counted
            async with unit_of_work(web) as session:
                changed = await auth.accounts.change_password(
                    session,
                    account_id=account.id,
                    current_password=form.current_password if account.has_password else None,
                    new_password=form.new_password,
                    keep_session_hash=current_token_hash(request),
                )
        except InvalidInput as problem:
            context["errors"] = {"new_password": problem.message}
            return page("password.html", context, status_code=HTTP_400_BAD_REQUEST)
        if changed.status == "throttled":
            wait = changed.retry_after
            context["errors"] = {
                "current_password": reauth_refusal(account, PasswordCheck(False, wait))
            }
            return page(
                "password.html",
                context,
                status_code=HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(wait)},
            )
        if changed.status != "changed":
            context["errors"] = {"current_password": "The current password is not right."}
            return page("password.html", context, status_code=HTTP_400_BAD_REQUEST)
        ended = changed.sessions_ended
        # a fresh session token, as at a sign-in; the other sessions are gone
        sign_in(request, account.id, authenticated_at=web.clock())
        others = "" if not ended else f" You were signed out on {_sessions(ended)}."
        flash(request, "Your password is changed." + others, "success")
        return see_other(PASSWORD_PAGE)


# --- helpers ---------------------------------------------------------------------------------


def _sessions(count: int) -> str:
    return "1 other device or browser" if count == 1 else f"{count} other devices or browsers"


async def _unless_reauthenticated(
    request: Request[Any, Any, Any],
    web: WebContext,
    auth: AuthPorts,
    account: Account,
    password: str,
) -> Template | None:
    """None when the sign-in is recent or `password` re-authenticates it (the two-factor
    changes that ask for it); else the two-factor page again: 400, or 429 with Retry-After
    once the account's sign-in failures are spent."""
    check = await reauthentication(request, web, auth, account, password)
    if check.ok:
        return None
    return await _settings_page(
        request, web, auth, account, reauth_refusal(account, check), retry_after=check.retry_after
    )


async def _settings_page(
    request: Request[Any, Any, Any],
    web: WebContext,
    auth: AuthPorts,
    account: Account,
    error: str = "",
    *,
    errors: dict[str, str] | None = None,
    retry_after: int = 0,
) -> Template:
    """The two-factor page (400 with `error` about the password or `errors` by field)."""
    left = 0
    if account.totp_enabled:
        async with web.database.session_maker() as session:
            left = await auth.accounts.recovery_codes_left(session, account.id)
    context = _context(request, web, account, codes_left=left)
    # a password refused shows at its field; without a password, over the page
    by_field = bool(error) and account.has_password
    context["error"] = "" if by_field else error
    context["errors"] = errors or ({"password": error} if by_field else {})
    failed = bool(error or errors)
    if retry_after:
        return page(
            "two_factor_settings.html",
            context,
            status_code=HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(retry_after)},
        )
    return page(
        "two_factor_settings.html",
        context,
        status_code=HTTP_400_BAD_REQUEST if failed else HTTP_200_OK,
    )


def _setup_page(
    request: Request[Any, Any, Any],
    web: WebContext,
    account: Account,
    secret: str,
    uri: str,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = HTTP_200_OK,
) -> Template:
    from mailvet.adapters.qr import totp_qr_svg

    spaced = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    context = _context(
        request, web, account, secret=spaced, qr_svg=totp_qr_svg(uri), errors=errors or {}
    )
    return page("two_factor_setup.html", context, status_code=status_code, headers=NO_STORE)


def _codes_page(
    request: Request[Any, Any, Any], web: WebContext, account: Account, codes: list[str]
) -> Template:
    text = "mailvet recovery codes for " + account.email + "\n"
    text += "Each code signs you in once, instead of a code from your app.\n\n"
    text += "\n".join(codes) + "\n"
    download = "data:text/plain;charset=utf-8," + quote(text, safe="")
    context = _context(
        request, web, account, codes=codes, download=download, download_name=CODES_FILE
    )
    return page("recovery_codes.html", context, headers=NO_STORE)
