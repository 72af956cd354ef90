"""What every sign-in page shares: rendering a form again with its errors, the per-IP
limits of the forms, the session keys of a sign-in in progress, signing in, and the
re-authentication of sensitive changes (`reauthentication`, `reauthentication_due` and
`reauth_refusal`, for other areas too: the account page's deletion uses them).

Session keys (server-side data, web/sessions.py):
- `pending_confirm_email`: the address the confirm page asks the code of (set by sign-up and
  by the sign-in of an unconfirmed account);
- `pending_2fa_account`: password (or Google) passed, the second factor not yet; with its
  deadline `pending_2fa_until` (POSIX seconds) and where to go next (`pending_next`);
- `oauth`: the state, nonce and PKCE verifier of a Google sign-in under way (web/auth/google.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from litestar import Request
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_429_TOO_MANY_REQUESTS
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.domain.accounts import Account
from mailvet.services import throttle
from mailvet.services.accounts import PasswordCheck
from mailvet.services.throttle import Limit
from mailvet.web.auth.ports import AuthPorts
from mailvet.web.context import WebContext
from mailvet.web.sessions import flash, recently_authenticated, sign_in
from mailvet.web.throttle import client_ip, count

PENDING_CONFIRM = "pending_confirm_email"
PENDING_2FA = "pending_2fa_account"
PENDING_2FA_UNTIL = "pending_2fa_until"
PENDING_NEXT = "pending_next"
SECOND_FACTOR_WITHIN = timedelta(minutes=10)  # the password step stays good this long
NO_STORE = {"Cache-Control": "no-store"}


# per-IP limits of the forms (services.throttle.Limit; counted with web.throttle.count)
LOGIN_PER_IP = Limit("login-ip", 30, 60)  # every sign-in attempt: password and second factor
SIGNUP_PER_IP = Limit("signup-ip", 10, 3600)
CONFIRM_PER_IP = Limit("confirm-ip", 30, 15 * 60)
RESEND_PER_IP = Limit("resend-ip", 20, 3600)
FORGOT_PER_IP = Limit("forgot-ip", 10, 3600)
RESET_PER_IP = Limit("reset-ip", 30, 15 * 60)


def unit_of_work(
    web: WebContext, *, write: bool = False
) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
    """One transaction of the web context's database (`Database.unit_of_work`)."""
    return web.database.unit_of_work(write=write)


async def hit(web: WebContext, request: Request[Any, Any, Any], rule: Limit) -> throttle.Throttle:
    """Count one post of this client (web.throttle.client_ip: an IPv6 one by its /64)
    against `rule`, in a transaction of its own: a refused form still counts."""
    return await count(web, rule, client_ip(request))


def page(
    name: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Template:
    return Template(
        f"auth/{name}", context=dict(context), status_code=status_code, headers=dict(headers or {})
    )


def too_many(name: str, context: Mapping[str, Any], retry_after: int, message: str) -> Template:
    """The form again, refused: 429 with Retry-After and the wait in words."""
    wait = wait_text(retry_after)
    return page(
        name,
        {**context, "error": f"{message} Try again in {wait}.", "retry_after": retry_after},
        status_code=HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(retry_after)},
    )


def wait_text(seconds: int) -> str:
    """A Retry-After in words: "45 seconds", "15 minutes", "3 hours"."""
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 2 * 3600:
        return f"{(seconds + 59) // 60} minutes"
    return f"{(seconds + 3599) // 3600} hours"


def see_other(path: str) -> Redirect:
    return Redirect(path, status_code=HTTP_303_SEE_OTHER)


def base_context(auth: AuthPorts) -> dict[str, Any]:
    """What the sign-in templates read besides their own fields."""
    return {
        "captcha_site_key": auth.captcha.site_key,
        "google": auth.oidc is not None,
        "error": "",
        "errors": {},
        "retry_after": 0,
    }


def complete_sign_in(
    request: Request[Any, Any, Any], account: Account, *, now: datetime, next_path: str
) -> Redirect:
    """Both factors passed: a fresh session token signed in as `account` (web/sessions.py),
    the pending state dropped, and on to `next_path`. An unconfirmed account is signed in
    too (it may look around but not validate) and reminded of its code."""
    for key in (PENDING_2FA, PENDING_2FA_UNTIL, PENDING_NEXT):
        request.session.pop(key, None)
    sign_in(request, account.id, authenticated_at=now)
    if not account.confirmed:
        request.session[PENDING_CONFIRM] = account.email
        flash(
            request,
            "Confirm your email address to validate lists: enter the code we sent you"
            " on the confirmation page.",
        )
    return see_other(next_path)


def start_second_factor(
    request: Request[Any, Any, Any], account: Account, *, now: datetime, next_path: str
) -> Redirect:
    request.session[PENDING_2FA] = account.id
    request.session[PENDING_2FA_UNTIL] = (now + SECOND_FACTOR_WITHIN).timestamp()
    request.session[PENDING_NEXT] = next_path
    return see_other("/login/two-factor")


def pending_second_factor(request: Request[Any, Any, Any], now: datetime) -> str | None:
    """The account waiting for its second factor, if its password step is recent enough."""
    account_id = request.session.get(PENDING_2FA)
    until = request.session.get(PENDING_2FA_UNTIL)
    if not isinstance(account_id, str) or not isinstance(until, int | float):
        return None
    if now.timestamp() > until:
        for key in (PENDING_2FA, PENDING_2FA_UNTIL, PENDING_NEXT):
            request.session.pop(key, None)
        return None
    return account_id


# --- re-authentication (also for other areas: API keys, deleting the account) -------------------


def reauthentication_due(request: Request[Any, Any, Any], web: WebContext) -> bool:
    """The sign-in is older than 10 minutes: a sensitive change asks for the password (or,
    without one, a Google sign-in) again."""
    return not recently_authenticated(request, now=web.clock())


async def reauthentication(
    request: Request[Any, Any, Any],
    web: WebContext,
    auth: AuthPorts,
    account: Account,
    password: str,
) -> PasswordCheck:
    """May `account` make a sensitive change now? ok when its sign-in is recent, or when
    `password` is its password (the sign-in's time is renewed then, under a fresh session
    token). A wrong password counts as a failed sign-in of the account (committed here,
    whatever the answer), so this cannot be used to guess: after 5 the answer is refused
    with `retry_after`, as /login is. An account without a password re-authenticates by
    signing in with Google again (/auth/google?next=...), which renews the time itself."""
    if not reauthentication_due(request, web):
        return PasswordCheck(True)
    if not account.has_password or not password:
        return PasswordCheck(False)
    async with unit_of_work(web) as session:
        check = await auth.accounts.check_password(session, account.id, password)
    if check.ok:
        sign_in(request, account.id, authenticated_at=web.clock())
    return check


def reauth_refusal(account: Account, check: PasswordCheck | None = None) -> str:
    if check is not None and check.retry_after:
        return f"Too many wrong passwords. Try again in {wait_text(check.retry_after)}."
    if account.has_password:
        return "The password is not right."
    return "Sign in with Google again first: your sign-in is over 10 minutes old."
