"""Sign-up, confirmation, sign-in with its second factor, sign-out, forgotten passwords.

Thin handlers over services/accounts.py (every rule lives there or in domain/accounts.py):
read the form (web/auth/schemas.py), count the client's posts against the form's per-IP
limit, check the captcha where the issue asks for one, call one use case in one unit of
work, then redirect (303) or show the form again with its message.

What a page may tell:
- sign-up answers the same whether the address has an account (on to /confirm; the owner
  of a known address gets an "account exists" mail instead of a code), and so does
  "forgot password" (the same page either way);
- sign-in says "the email or password is not right" for both an unknown address and a
  wrong password;
- the confirm page tells how a code stands (tries left, voided, expired) and refuses a
  resend with 429 only to the signed-in account itself; to anyone else (the sign-up's own
  browser included, which is not signed in) a wrong code and a resend answer the same
  whether an account waits for the address or not;
- limits answer 429 with Retry-After and the wait in words: 30 sign-in attempts per IP per
  minute (the password step and the second factor together), 5 failed passwords per
  address and 5 failed second factors per account per 15 minutes (services/accounts.py),
  10 sign-ups, 20 code resends and 10 reset requests per IP per hour, 30 code entries per IP
  per 15 minutes, and the code's own rules (5 wrong entries void it; resent at most 5
  times, 60 s apart).
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from litestar import Controller, Request, get, post
from litestar.params import FromQuery, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
)

from mailvet.domain.accounts import (
    CODE_MAX_RESENDS,
    CODE_MAX_WRONG,
    CodeOutcome,
    InvalidEmail,
    ResendVerdict,
    normalize_email,
)
from mailvet.services import accounts as account_service
from mailvet.services.accounts import InvalidInput, InvalidToken
from mailvet.web.auth.common import (
    CONFIRM_PER_IP,
    FORGOT_PER_IP,
    LOGIN_PER_IP,
    NO_STORE,
    PENDING_CONFIRM,
    PENDING_NEXT,
    RESEND_PER_IP,
    RESET_PER_IP,
    SIGNUP_PER_IP,
    base_context,
    complete_sign_in,
    hit,
    page,
    pending_second_factor,
    see_other,
    start_second_factor,
    too_many,
    unit_of_work,
)
from mailvet.web.auth.ports import Auth
from mailvet.web.auth.schemas import (
    CodeForm,
    EmailForm,
    LoginForm,
    ResetForm,
    SignupForm,
    safe_next,
)
from mailvet.web.context import Web, WebContext
from mailvet.web.sessions import (
    flash,
    request_account,
    requires_login,
    sign_out,
    signed_in_id,
)
from mailvet.web.throttle import remote_address

log = structlog.get_logger(__name__)

CAPTCHA_FAILED = "Please confirm that you are not a robot."
BAD_LOGIN = "The email or password is not right."
CODE_NOT_RIGHT = (
    "This code is not right, or it no longer works: a code works for 15 minutes and"
    f" {CODE_MAX_WRONG} tries. Use the code of the latest mail, or ask for a new one below."
)


class SignupController(Controller):
    """/signup, /confirm and its resend button."""

    path = "/"
    include_in_schema = False

    @get("/signup", name="signup")
    async def signup_page(self, request: Request[Any, Any, Any], auth: Auth) -> Template | Redirect:
        if request_account(request) is not None:
            return see_other("/app")
        return page("signup.html", {**base_context(auth), "values": {}})

    @post("/signup", status_code=HTTP_200_OK)
    async def signup(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        form = await SignupForm.read(request)
        context = {
            **base_context(auth),
            "values": {
                "email": form.email,
                "first_name": form.first_name,
                "last_name": form.last_name,
                "newsletter": form.newsletter,
            },
        }
        limited = await hit(web, request, SIGNUP_PER_IP)
        if not limited.allowed:
            return too_many("signup.html", context, limited.retry_after, "Too many sign-ups.")
        if not await auth.captcha.verify(form.captcha, remote_address(request)):
            return page(
                "signup.html",
                {**context, "error": CAPTCHA_FAILED},
                status_code=HTTP_400_BAD_REQUEST,
            )
        try:
            async with unit_of_work(web) as session:
                address = await auth.accounts.signup(
                    session,
                    email=form.email,
                    password=form.password,
                    first_name=form.first_name,
                    last_name=form.last_name,
                    newsletter=form.newsletter,
                )
        except InvalidInput as problem:
            context["errors"] = {problem.field or "form": problem.message}
            return page("signup.html", context, status_code=HTTP_400_BAD_REQUEST)
        request.session[PENDING_CONFIRM] = address
        return see_other("/confirm")

    @get("/confirm", name="confirm")
    async def confirm_page(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        email, _own, redirect = await _confirm_address(request, web)
        if redirect is not None:
            return redirect
        return page("confirm.html", {**base_context(auth), "email": email})

    @post("/confirm", status_code=HTTP_200_OK)
    async def confirm(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        form = await CodeForm.read(request)
        email, own, redirect = await _confirm_address(request, web)
        if redirect is not None:
            return redirect
        context = {**base_context(auth), "email": email, "typed_email": form.email}
        address = email or _normalized(form.email)
        if not address:
            context["errors"] = {"email": "Enter the address you signed up with."}
            return page("confirm.html", context, status_code=HTTP_400_BAD_REQUEST)
        limited = await hit(web, request, CONFIRM_PER_IP)
        if not limited.allowed:
            return too_many("confirm.html", context, limited.retry_after, "Too many codes.")
        async with unit_of_work(web) as session:
            outcome = await auth.accounts.confirm(session, email=address, code=form.code)
        if outcome.outcome is CodeOutcome.ACCEPTED:
            request.session.pop(PENDING_CONFIRM, None)
            if request_account(request) is not None:
                flash(request, "Your email address is confirmed.", "success")
                return see_other("/app")
            flash(request, "Your email address is confirmed. Sign in to start.", "success")
            return see_other("/login")
        if not email:  # remember what was typed, for the resend button
            request.session[PENDING_CONFIRM] = address
            context["email"] = address
        # the tries left, a voided or an expired code only to the account itself: to anyone
        # else they would tell an address waiting for its code from one that is not
        problem = _code_problem(outcome.outcome, outcome.attempts_left) if own else CODE_NOT_RIGHT
        context["errors"] = {"code": problem}
        return page("confirm.html", context, status_code=HTTP_400_BAD_REQUEST)

    @post("/confirm/resend", status_code=HTTP_200_OK)
    async def resend(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        form = await EmailForm.read(request)
        email, own, redirect = await _confirm_address(request, web)
        if redirect is not None:
            return redirect
        address = email or _normalized(form.email)
        context = {**base_context(auth), "email": address, "typed_email": form.email}
        if not address:
            context["errors"] = {"email": "Enter the address you signed up with."}
            return page("confirm.html", context, status_code=HTTP_400_BAD_REQUEST)
        limited = await hit(web, request, RESEND_PER_IP)
        if not limited.allowed:
            return too_many("confirm.html", context, limited.retry_after, "Too many new codes.")
        async with unit_of_work(web) as session:
            verdict = await auth.accounts.resend_code(session, email=address)
        request.session[PENDING_CONFIRM] = address
        if not own:
            # the same answer whatever the verdict: a refusal (a code sent less than a
            # minute ago, or no resends left) would tell that an account waits for it
            flash(
                request,
                f"If an account is waiting for a code at {address}, we sent it a new one"
                " (the previous one no longer works). Codes go at most a minute apart and"
                " 5 times a day.",
            )
            return see_other("/confirm")
        if not verdict.allowed:
            return too_many("confirm.html", context, verdict.retry_after, _resend_refusal(verdict))
        flash(request, f"We sent a new code to {address}. The previous one no longer works.")
        return see_other("/confirm")


class LoginController(Controller):
    """/login, /login/two-factor, /logout, /logout/everywhere."""

    path = "/"
    include_in_schema = False

    @get("/login", name="login")
    async def login_page(
        self,
        request: Request[Any, Any, Any],
        auth: Auth,
        next_path: Annotated[str, QueryParameter(name="next")] = "",
    ) -> Template | Redirect:
        target = safe_next(next_path[:2048])
        if request_account(request) is not None:
            return see_other(target)
        return page("login.html", {**base_context(auth), "values": {}, "next": target})

    @post("/login", status_code=HTTP_200_OK)
    async def login(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        form = await LoginForm.read(request)
        target = safe_next(form.next)
        context = {**base_context(auth), "values": {"email": form.email}, "next": target}
        now = web.clock()
        per_ip = await hit(web, request, LOGIN_PER_IP)
        if not per_ip.allowed:
            return too_many("login.html", context, per_ip.retry_after, "Too many sign-in attempts.")
        if not await auth.captcha.verify(form.captcha, remote_address(request)):
            return page(
                "login.html", {**context, "error": CAPTCHA_FAILED}, status_code=HTTP_400_BAD_REQUEST
            )
        async with unit_of_work(web) as session:
            # the per-IP attempt is counted above, before the captcha
            outcome = await auth.accounts.login(session, email=form.email, password=form.password)
        if outcome.status == "throttled":
            return too_many("login.html", context, outcome.retry_after, "Too many failed sign-ins.")
        if outcome.status == "disabled":
            return page(
                "login.html",
                {**context, "error": "This account is disabled."},
                status_code=HTTP_403_FORBIDDEN,
            )
        if outcome.account is None or outcome.status not in ("ok", "second_factor"):
            return page(
                "login.html", {**context, "error": BAD_LOGIN}, status_code=HTTP_400_BAD_REQUEST
            )
        if outcome.status == "second_factor":
            return start_second_factor(request, outcome.account, now=now, next_path=target)
        return complete_sign_in(request, outcome.account, now=now, next_path=target)

    @get("/login/two-factor", name="login_two_factor")
    async def two_factor_page(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        if pending_second_factor(request, web.clock()) is None:
            return see_other("/login")
        return page("two_factor.html", base_context(auth))

    @post("/login/two-factor", status_code=HTTP_200_OK)
    async def two_factor(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        now = web.clock()
        account_id = pending_second_factor(request, now)
        if account_id is None:
            flash(request, "Sign in again: the first step has expired.", "error")
            return see_other("/login")
        form = await CodeForm.read(request)
        context = base_context(auth)
        per_ip = await hit(web, request, LOGIN_PER_IP)
        if not per_ip.allowed:
            return too_many(
                "two_factor.html", context, per_ip.retry_after, "Too many sign-in attempts."
            )
        async with unit_of_work(web) as session:
            outcome = await auth.accounts.verify_second_factor(
                session, account_id=account_id, code=form.code
            )
        if outcome.retry_after > 0:
            return too_many(
                "two_factor.html", context, outcome.retry_after, "Too many wrong codes."
            )
        account = outcome.account
        if not outcome.ok or account is None:
            context["errors"] = {"code": "This code is not right (or was used already)."}
            return page("two_factor.html", context, status_code=HTTP_400_BAD_REQUEST)
        target = safe_next(str(request.session.get(PENDING_NEXT, "")))
        answer = complete_sign_in(request, account, now=now, next_path=target)
        if outcome.used_recovery_code:
            left = outcome.recovery_codes_left
            flash(
                request,
                f"You signed in with a recovery code; {left} left. Make new ones on the"
                " two-factor page if you are running out.",
            )
        return answer

    @post("/logout", status_code=HTTP_200_OK)
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        sign_out(request)
        flash(request, "You are signed out.")
        return see_other("/")

    @post("/logout/everywhere", status_code=HTTP_200_OK, guards=[requires_login])
    async def logout_everywhere(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Redirect:
        async with unit_of_work(web) as session:
            await auth.accounts.sign_out_everywhere(session, signed_in_id(request))
        sign_out(request)
        flash(request, "You are signed out on every device and browser.")
        return see_other("/")


class PasswordResetController(Controller):
    """/forgot-password and /reset-password?token=."""

    path = "/"
    include_in_schema = False

    @get("/forgot-password", name="forgot_password")
    async def forgot_page(self, auth: Auth) -> Template:
        return page("forgot.html", {**base_context(auth), "values": {}, "sent": False})

    @post("/forgot-password", status_code=HTTP_200_OK)
    async def forgot(self, request: Request[Any, Any, Any], web: Web, auth: Auth) -> Template:
        form = await EmailForm.read(request)
        context = {**base_context(auth), "values": {"email": form.email}, "sent": False}
        limited = await hit(web, request, FORGOT_PER_IP)
        if not limited.allowed:
            return too_many("forgot.html", context, limited.retry_after, "Too many requests.")
        if not form.email.strip():
            context["errors"] = {"email": "Enter your email address."}
            return page("forgot.html", context, status_code=HTTP_400_BAD_REQUEST)
        async with unit_of_work(web) as session:
            await auth.accounts.request_password_reset(session, email=form.email)
        # the same page whether the address has an account, had too many links or none
        return page("forgot.html", {**context, "sent": True, "email": form.email.strip()})

    @get("/reset-password", name="reset_password")
    async def reset_page(self, web: Web, auth: Auth, token: FromQuery[str] = "") -> Template:
        async with web.database.session_maker() as session:
            usable = await auth.accounts.reset_token_usable(session, token[:256])
        if not usable:
            return page(
                "reset_expired.html",
                base_context(auth),
                status_code=HTTP_400_BAD_REQUEST,
                headers=NO_STORE,
            )
        return page("reset.html", {**base_context(auth), "token": token}, headers=NO_STORE)

    @post("/reset-password", status_code=HTTP_200_OK)
    async def reset(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth
    ) -> Template | Redirect:
        form = await ResetForm.read(request)
        context = {**base_context(auth), "token": form.token}
        limited = await hit(web, request, RESET_PER_IP)
        if not limited.allowed:
            return too_many("reset.html", context, limited.retry_after, "Too many attempts.")
        try:
            async with unit_of_work(web) as session:
                await auth.accounts.reset_password(
                    session, token=form.token, new_password=form.password
                )
        except InvalidToken:
            return page(
                "reset_expired.html",
                base_context(auth),
                status_code=HTTP_400_BAD_REQUEST,
                headers=NO_STORE,
            )
        except InvalidInput as problem:
            context["errors"] = {"password": problem.message}
            return page("reset.html", context, status_code=HTTP_400_BAD_REQUEST, headers=NO_STORE)
        sign_out(request)  # every session of the account ended; this browser's too
        flash(
            request,
            "Your password is changed and every session of your account was ended."
            " Sign in with the new password.",
            "success",
        )
        return see_other("/login")


# --- helpers ---------------------------------------------------------------------------------


async def _confirm_address(
    request: Request[Any, Any, Any], web: WebContext
) -> tuple[str, bool, Redirect | None]:
    """The address the confirm page is about, whether it is the signed-in account's own,
    and where to go instead. The signed-in account's address (`own`: only its owner can be
    signed in as it, so the page may tell it how its code stands; a confirmed one has
    nothing to do here: on to the dashboard), else the one of the sign-up in this session,
    else "" (the page asks for it)."""
    signed = request_account(request)
    if signed is not None:
        async with web.database.session_maker() as session:
            account = await account_service.get_account(session, signed.account_id)
        if account is not None:
            if account.confirmed:
                return account.email, False, see_other("/app")
            return account.email, True, None
    pending = request.session.get(PENDING_CONFIRM)
    return (pending if isinstance(pending, str) else ""), False, None


def _normalized(typed: str) -> str:
    try:
        return normalize_email(typed)
    except InvalidEmail:
        return ""


def _resend_refusal(verdict: ResendVerdict) -> str:
    """Why the account's own resend is refused (too_many adds when to ask again)."""
    if verdict.spent:
        return (
            f"The {CODE_MAX_RESENDS} new codes allowed are used up; the allowance renews"
            " a day after the last one."
        )
    return "A new code cannot be sent yet."


def _code_problem(outcome: CodeOutcome, attempts_left: int) -> str:
    if outcome is CodeOutcome.EXPIRED:
        return "This code has expired. Ask for a new one below."
    if outcome is CodeOutcome.VOIDED:
        return (
            f"After {CODE_MAX_WRONG} wrong entries this code no longer works."
            " Ask for a new one below."
        )
    tries = "1 more try" if attempts_left == 1 else f"{attempts_left} more tries"
    return f"This code is not right: {tries} before it stops working."
