"""The whole way in: sign up, the code from the mail, confirm, sign in, turn on TOTP with the
shown secret, sign out, sign in with TOTP (a replayed code refused), a recovery code once,
and the account's security pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web.auth_helpers import (
    NEW_PASSWORD,
    PASSWORD,
    RECOVERY,
    auth_app,
    browser,
    confirmed_account,
    log_in,
    sign_up,
    totp_now,
    turn_on_totp,
)
from tests.web.shell_helpers import look

pytestmark = pytest.mark.pipeline

EMAIL = "ann.lee@example.com"


async def test_sign_up_confirm_sign_in_totp_and_recovery(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        form = await b.get("/signup")
        for label in ("Email", "Password", "First name", "Last name"):
            assert f">{label}</label>" in form.text
        answer = await sign_up(b, EMAIL, newsletter="on")
        assert answer.status_code == 303 and answer.headers["location"] == "/confirm"
        confirm = await b.follow(answer)
        assert f"<strong>{EMAIL}</strong>" in confirm.text
        assert ">Confirmation code</label>" in confirm.text
        row = await s.account_row(EMAIL)
        assert row is not None and row.confirmed_at is None and row.newsletter

        # an unconfirmed account can sign in, and is pointed at /confirm
        signed = await log_in(b, EMAIL)
        assert signed.status_code == 303 and signed.headers["location"] == "/app"
        security = await b.get("/app/account/two-factor")
        assert 'id="confirm-banner"' in security.text and 'href="/confirm"' in security.text

        code = await s.code_for(EMAIL)
        done = await b.post("/confirm", {"code": code})
        assert done.status_code == 303 and done.headers["location"] == "/app"
        row = await s.account_row(EMAIL)
        assert row is not None and row.confirmed_at is not None
        security = await b.get("/app/account/two-factor")
        assert 'id="confirm-banner"' not in security.text

        secret, codes = await turn_on_totp(s, b)
        mails = await s.mail_to(EMAIL)
        assert any("Two-factor authentication is on" in m["Subject"] for m in mails)
        row = await s.account_row(EMAIL)
        assert row is not None and row.totp_enabled and secret not in (row.totp_secret or "")

        out = await b.post("/logout")
        assert out.status_code == 303 and await b.whoami() is None

        # password, then the TOTP code
        s.clock.advance(seconds=60)
        first = await log_in(b, EMAIL)
        assert first.status_code == 303
        assert first.headers["location"] == "/login/two-factor"
        assert await b.whoami() is None  # not signed in before the second factor
        page = await b.get("/login/two-factor")
        assert ">Authentication code</label>" in page.text
        code = totp_now(secret, s)
        second = await b.post("/login/two-factor", {"code": code})
        assert second.status_code == 303 and second.headers["location"] == "/app"
        assert await b.whoami() == "signed in"
        await b.post("/logout")

        # the same code again, within its window: refused
        await log_in(b, EMAIL)
        replay = await b.post("/login/two-factor", {"code": code})
        assert replay.status_code == 400
        assert "not right" in replay.text
        assert await b.whoami() is None

        # a recovery code works once (any case, spaces)
        recovered = await b.post("/login/two-factor", {"code": codes[0].upper()})
        assert recovered.status_code == 303
        assert recovered.headers["location"] == "/app"  # another area's page
        landing = await b.get("/")
        assert "recovery code; 9 left" in landing.text
        await b.post("/logout")
        await log_in(b, EMAIL)
        again = await b.post("/login/two-factor", {"code": codes[0]})
        assert again.status_code == 400
        assert await b.whoami() is None


async def test_two_factor_off_needs_a_current_code_and_a_recent_sign_in(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        secret, _codes = await turn_on_totp(s, b)
        s.clock.advance(minutes=11)  # the sign-in is now older than 10 minutes
        page = await b.get("/app/account/two-factor")
        assert 'id="disable-password"' in page.text  # the password is asked again
        code = totp_now(secret, s)
        refused = await b.post("/app/account/two-factor/disable", {"code": code})
        assert refused.status_code == 400 and "password is not right" in refused.text
        wrong = await b.post(
            "/app/account/two-factor/disable", {"code": code, "password": "not the password"}
        )
        assert wrong.status_code == 400
        # the password renews the sign-in; a wrong code still keeps TOTP on
        bad_code = await b.post(
            "/app/account/two-factor/disable", {"code": "123456", "password": PASSWORD}
        )
        assert bad_code.status_code == 400 and "code is not right" in bad_code.text
        assert 'id="disable-password"' not in bad_code.text
        off = await b.post("/app/account/two-factor/disable", {"code": code})
        assert off.status_code == 303
        row = await s.account_row(EMAIL)
        assert row is not None and not row.totp_enabled and row.totp_secret is None
        mails = await s.mail_to(EMAIL)
        assert any("Two-factor authentication is off" in m["Subject"] for m in mails)


async def test_new_recovery_codes_replace_the_old_ones(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        secret, old = await turn_on_totp(s, b)
        fresh = await b.post("/app/account/two-factor/recovery-codes")
        assert fresh.status_code == 200
        new = RECOVERY.findall(fresh.text)
        assert len(new) == 10 and not set(new) & set(old)
        await b.post("/logout")
        await log_in(b, EMAIL)
        assert (await b.post("/login/two-factor", {"code": old[1]})).status_code == 400
        assert (await b.post("/login/two-factor", {"code": new[1]})).status_code == 303
        assert secret  # unchanged by new recovery codes
        overview = await b.get("/app/account/two-factor")
        assert "9 unused recovery codes" in overview.text


async def test_change_password_ends_the_other_sessions(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        other = b.fresh()
        await confirmed_account(s, b, EMAIL)
        assert (await log_in(other, EMAIL)).status_code == 303
        await log_in(b, EMAIL)
        page = await b.get("/app/account/password")
        assert ">Current password</label>" in page.text
        assert ">New password</label>" in page.text
        wrong = await b.post(
            "/app/account/password",
            {"current_password": "nope nope nope", "new_password": NEW_PASSWORD},
        )
        assert wrong.status_code == 400 and "not right" in wrong.text
        weak = await b.post(
            "/app/account/password", {"current_password": PASSWORD, "new_password": "password123"}
        )
        assert weak.status_code == 400
        before = b.cookie("mailvet_session")
        changed = await b.post(
            "/app/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        )
        assert changed.status_code == 303
        assert b.cookie("mailvet_session") not in (None, before)  # a fresh session token
        landing = await b.follow(changed)
        assert "signed out on 1 other device" in landing.text
        assert await b.whoami() == "signed in"
        assert await other.whoami() is None
        assert (await log_in(other, EMAIL)).status_code == 400
        assert (await log_in(other, EMAIL, NEW_PASSWORD)).status_code == 303
        mails = await s.mail_to(EMAIL)
        assert any("password was changed" in m["Subject"] for m in mails)


async def test_sign_out_everywhere(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        other = b.fresh()
        await confirmed_account(s, b, EMAIL)
        await log_in(other, EMAIL)
        await log_in(b, EMAIL)
        out = await b.post("/logout/everywhere")
        assert out.status_code == 303
        assert await b.whoami() is None
        assert await other.whoami() is None
        mails = await s.mail_to(EMAIL)
        assert any("signed out of mailvet everywhere" in m["Subject"] for m in mails)


async def test_pages_of_a_signed_in_account_need_a_sign_in(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        for path in ("/app/account/two-factor", "/app/account/password"):
            answer = await b.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/login?next=")
        assert (await b.post("/logout/everywhere")).status_code in (303, 401)
        two_factor = await b.get("/login/two-factor")  # nothing pending
        assert two_factor.status_code == 303 and two_factor.headers["location"] == "/login"


async def test_sign_in_issues_a_fresh_session_token(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await sign_up(b, "someone.else@example.com")  # an anonymous session with data
        before = b.cookie("mailvet_session")
        assert before
        assert (await log_in(b, EMAIL)).status_code == 303
        after = b.cookie("mailvet_session")
        assert after and after != before
        old = b.fresh()
        old.set_cookie("mailvet_session", before)
        assert await old.whoami() is None
        assert (await b.get("/static/auth.css")).status_code == 200


async def test_the_password_step_expires_before_the_second_factor(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        secret, _ = await turn_on_totp(s, b)
        await b.post("/logout")
        await log_in(b, EMAIL)
        s.clock.advance(minutes=10, seconds=1)
        late = await b.post("/login/two-factor", {"code": totp_now(secret, s)})
        assert late.status_code == 303 and late.headers["location"] == "/login"
        assert await b.whoami() is None
        assert (await b.get("/login/two-factor")).headers["location"] == "/login"


async def test_a_disabled_account_cannot_sign_in(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        row = await s.account_row(EMAIL)
        assert row is not None
        async with look(s.url) as database, database.session_maker() as session, session.begin():
            await s.ports.accounts.set_disabled(session, row.id, True)
        refused = await log_in(b, EMAIL)
        assert refused.status_code == 403 and "disabled" in refused.text
        assert await b.whoami() is None


async def test_confirm_from_another_browser_asks_for_the_address(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await sign_up(b, EMAIL)
        code = await s.code_for(EMAIL)
        phone = b.fresh()  # the mail opened elsewhere: no sign-up in this session
        page = await phone.get("/confirm")
        assert ">Email</label>" in page.text and ">Confirmation code</label>" in page.text
        assert page.text.count(">Email</label>") == 1
        missing = await phone.post("/confirm", {"code": code})
        assert missing.status_code == 400 and "address you signed up with" in missing.text
        done = await phone.post("/confirm", {"email": EMAIL.upper(), "code": code})
        assert done.status_code == 303 and done.headers["location"] == "/login"
        row = await s.account_row(EMAIL)
        assert row is not None and row.confirmed_at is not None


async def test_guessing_the_current_password_locks_the_account_like_sign_in(
    tmp_path: Path,
) -> None:
    """Review S1: the password page's and the re-authentication's wrong passwords are
    counted (a stolen session cannot guess without end) and lock /login too."""
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        await b.get("/app/account/password")
        for _ in range(3):
            wrong = await b.post(
                "/app/account/password",
                {"current_password": "nope nope nope", "new_password": NEW_PASSWORD},
            )
            assert wrong.status_code == 400 and "not right" in wrong.text
        s.clock.advance(minutes=11)  # the sign-in is old: turning 2FA on asks the password
        for _ in range(2):
            wrong = await b.post("/app/account/two-factor/setup", {"password": "nope nope nope"})
            assert wrong.status_code == 400 and "not right" in wrong.text
        locked = await b.post(
            "/app/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        )
        assert locked.status_code == 429 and "Try again in" in locked.text
        assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
        reauth = await b.post("/app/account/two-factor/setup", {"password": PASSWORD})
        assert reauth.status_code == 429 and "Too many wrong passwords" in reauth.text
        elsewhere = b.fresh()
        assert (await log_in(elsewhere, EMAIL)).status_code == 429
        s.clock.advance(minutes=15)
        assert (await log_in(elsewhere, EMAIL)).status_code == 303
