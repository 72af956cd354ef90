"""Google sign-in: /auth/google sends the browser to the provider, /auth/google/callback
takes it back.

The `state`, `nonce` and PKCE `code_verifier` of the authorization request are kept in this
browser's server-side session (never in a cookie or the URL) and taken out at the callback,
so each can be used once and only by the browser that started: a callback whose state is
not the one this session sent is refused (adapters/oidc.py compares them), as is one with
nothing pending. Signed out, the checked identity goes to
`AccountService.sign_in_with_google`: the account of that Google identity; else, only for an
address Google verified, the account of the address (linked now) or a new one. Signed in
("Connect Google" on the account page, or Google again as a re-authentication), it goes to
`link_google`: linked to the signed-in account itself (refused when another account has it,
and when the sign-in is over 10 minutes old), never a switch to another account. An
unverified address never creates or links anything (the service's rule; an account
already linked to that Google identity still signs in). The page tells only that it failed;
the reason goes to the log.

The redirect URI is MAILVET_PUBLIC_URL + /auth/google/callback: the one registered with the
provider, the same in the authorization request and the token request.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException
from litestar.params import QueryParameter
from litestar.response import Redirect
from litestar.status_codes import HTTP_302_FOUND

from mailvet.domain.identity import GoogleIdentity, SignInRefused
from mailvet.web.auth.common import (
    complete_sign_in,
    reauthentication_due,
    see_other,
    start_second_factor,
    unit_of_work,
)
from mailvet.web.auth.ports import Auth, AuthPorts
from mailvet.web.auth.schemas import safe_next
from mailvet.web.context import Web, WebContext
from mailvet.web.sessions import flash, request_account

log = structlog.get_logger(__name__)

OAUTH_KEY = "oauth"
CALLBACK_PATH = "/auth/google/callback"
FAILED = "Signing in with Google did not work. Try again, or sign in with your password."
CONNECT_STALE = "To connect Google, sign in again first: your sign-in is over 10 minutes old."
CONNECT_REFUSED = {
    "stale": CONNECT_STALE,
    "taken": "This Google account is connected to another mailvet account.",
    "other_identity": "Another Google account is connected. Disconnect it first.",
    "disabled": "This account is disabled.",
}


def redirect_uri(public_url: str) -> str:
    return public_url.rstrip("/") + CALLBACK_PATH


class GoogleController(Controller):
    path = "/auth/google"
    include_in_schema = False

    @get("/", name="google_sign_in")
    async def start(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        auth: Auth,
        next_path: Annotated[str, QueryParameter(name="next")] = "",
    ) -> Redirect:
        if auth.oidc is None:
            raise NotFoundException("Google sign-in is not set up here")
        try:
            authorization = await auth.oidc.authorization_url(
                redirect_uri(web.settings.web.public_url)
            )
        except SignInRefused:
            flash(request, FAILED, "error")
            return see_other("/login")
        request.session[OAUTH_KEY] = {
            "state": authorization.state,
            "nonce": authorization.nonce,
            "verifier": authorization.code_verifier,
            "next": safe_next(next_path[:2048]),
        }
        return Redirect(authorization.url, status_code=HTTP_302_FOUND)

    @get("/callback", name="google_callback")
    async def callback(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        auth: Auth,
        code: Annotated[str, QueryParameter(name="code")] = "",
        oauth_state: Annotated[str, QueryParameter(name="state")] = "",
        error: Annotated[str, QueryParameter(name="error")] = "",
    ) -> Redirect:
        if auth.oidc is None:
            raise NotFoundException("Google sign-in is not set up here")
        pending = request.session.pop(OAUTH_KEY, None)  # one callback per authorization
        if not isinstance(pending, dict) or error:
            log.info(
                "google_sign_in_abandoned", pending=isinstance(pending, dict), error=error[:64]
            )
            flash(request, FAILED, "error")
            return see_other("/login")
        try:
            identity = await auth.oidc.complete(
                code[:4096],
                redirect_uri=redirect_uri(web.settings.web.public_url),
                state_sent=str(pending.get("state", "")),
                state_received=oauth_state[:1024],
                nonce=str(pending.get("nonce", "")),
                code_verifier=str(pending.get("verifier", "")),
            )
        except SignInRefused:  # the adapter logged the reason
            flash(request, FAILED, "error")
            return see_other("/login")
        now = web.clock()
        target = safe_next(str(pending.get("next", "")))
        signed = request_account(request)
        if signed is not None:
            return await _connect(request, web, auth, signed.account_id, identity, target)
        async with unit_of_work(web) as session:
            outcome = await auth.accounts.sign_in_with_google(session, identity)
        if outcome.account is None or outcome.status not in ("ok", "second_factor"):
            log.info("google_sign_in_refused", status=outcome.status)
            message = "This account is disabled." if outcome.status == "disabled" else FAILED
            flash(request, message, "error")
            return see_other("/login")
        if outcome.status == "second_factor":
            return start_second_factor(request, outcome.account, now=now, next_path=target)
        answer = complete_sign_in(request, outcome.account, now=now, next_path=target)
        if outcome.created:
            flash(request, "Welcome to mailvet: your account is ready.", "success")
        elif outcome.linked:
            flash(request, "Your Google account is now connected to this account.", "success")
        return answer


async def _connect(
    request: Request[Any, Any, Any],
    web: WebContext,
    auth: AuthPorts,
    account_id: str,
    identity: GoogleIdentity,
    target: str,
) -> Redirect:
    """A signed-in browser came back from Google: "Connect Google" (link the identity to
    this account) or, when it is the account's own identity already, a fresh sign-in (the
    re-authentication of an account without a password). Never another account.

    Connecting a new identity needs a sign-in of the last 10 minutes (`link_google` answers
    "stale" otherwise)."""
    now = web.clock()
    recent = not reauthentication_due(request, web)
    async with unit_of_work(web) as session:
        link = await auth.accounts.link_google(session, account_id, identity, recent=recent)
    if link.account is None:
        log.info("google_connect_refused", account_id=account_id, status=link.status)
        flash(request, CONNECT_REFUSED.get(link.status, FAILED), "error")
        return see_other(target)
    if link.status == "linked":
        flash(request, "Your Google account is now connected to this account.", "success")
        return see_other(target)
    # its own identity: Google was asked again, so the sign-in is renewed
    if link.account.totp_enabled:
        return start_second_factor(request, link.account, now=now, next_path=target)
    return complete_sign_in(request, link.account, now=now, next_path=target)
