"""Forgotten passwords and what the pages give away: the reset link works once, for an hour,
ends every session of the account and mails a notice; sign-up, "forgot password" and
sign-in answer the same for an address with an account and one without (the owner of a
known address gets an "account exists" mail instead of a code)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.web.auth_helpers import (
    NEW_PASSWORD,
    PASSWORD,
    AuthApp,
    Browser,
    auth_app,
    browser,
    confirmed_account,
    log_in,
    sign_up,
)

pytestmark = pytest.mark.pipeline

EMAIL = "ann.lee@example.com"
NEW = "nobody.here@example.com"
TOKENS = re.compile(r"[0-9a-f]{64,}")  # the CSRF token (form field and htmx header)


def same_page(text: str, address: str) -> str:
    """A page with what differs by nature taken out: the address typed, the CSRF token."""
    return TOKENS.sub("TOKEN", text.replace(address, "ADDRESS"))


async def ask_reset(s: AuthApp, b: Browser, email: str = EMAIL) -> str:
    await b.get("/forgot-password")
    answer = await b.post("/forgot-password", {"email": email})
    assert answer.status_code == 200 and 'id="reset-sent"' in answer.text
    return await s.reset_link_for(email)


def path_of(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


async def test_a_reset_link_works_once_and_ends_every_session(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        elsewhere = b.fresh()
        await confirmed_account(s, b, EMAIL)
        assert (await log_in(elsewhere, EMAIL)).status_code == 303
        link = await ask_reset(s, b)
        form = await b.get(path_of(link))
        assert form.status_code == 200 and ">New password</label>" in form.text
        assert form.headers["cache-control"] == "no-store"
        token = dict(re.findall(r'name="(token)" value="([^"]+)"', form.text))["token"]
        weak = await b.post("/reset-password", {"token": token, "password": "short"})
        assert weak.status_code == 400 and 'id="reset-password-error"' in weak.text
        done = await b.post("/reset-password", {"token": token, "password": NEW_PASSWORD})
        assert done.status_code == 303 and done.headers["location"] == "/login"
        landing = await b.follow(done)
        assert "every session of your account was ended" in landing.text
        assert await elsewhere.whoami() is None
        notices = [m for m in await s.mail_to(EMAIL) if "password was changed" in m["Subject"]]
        assert len(notices) == 1
        assert (await log_in(b, EMAIL, PASSWORD)).status_code == 400
        assert (await log_in(b, EMAIL, NEW_PASSWORD)).status_code == 303
        # the link again: used up, also by a direct post
        used = await b.get(path_of(link))
        assert used.status_code == 400 and 'id="reset-expired"' in used.text
        again = await b.post(
            "/reset-password", {"token": token, "password": "yet another pass phrase"}
        )
        assert again.status_code == 400 and 'id="reset-expired"' in again.text
        assert (await log_in(b.fresh(), EMAIL, NEW_PASSWORD)).status_code == 303


async def test_a_reset_link_expires_after_an_hour(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        link = await ask_reset(s, b)
        s.clock.advance(hours=1)
        late = await b.get(path_of(link))
        assert late.status_code == 400 and 'id="reset-expired"' in late.text
        token = link.rsplit("=", 1)[1]
        post = await b.post("/reset-password", {"token": token, "password": NEW_PASSWORD})
        assert post.status_code == 400 and 'id="reset-expired"' in post.text
        assert (await log_in(b, EMAIL, PASSWORD)).status_code == 303
        forged = await b.get("/reset-password?token=not-a-token-we-made")
        assert forged.status_code == 400 and 'id="reset-expired"' in forged.text


async def test_forgot_password_answers_the_same_for_any_address(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await s.deliver()
        answers = {}
        for address in (EMAIL, NEW):
            visitor = b.fresh()
            await visitor.get("/forgot-password")
            answers[address] = await visitor.post("/forgot-password", {"email": address})
        known, unknown = answers[EMAIL], answers[NEW]
        assert known.status_code == unknown.status_code == 200
        assert same_page(known.text, EMAIL) == same_page(unknown.text, NEW)
        sent = await s.deliver()
        assert [m["To"] for m in sent] == [EMAIL]


async def test_sign_up_with_a_known_address_tells_nothing_and_mails_the_owner(
    tmp_path: Path,
) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        before = await s.account_row(EMAIL)
        await s.deliver()
        pages = {}
        for address in (EMAIL, NEW):
            visitor = b.fresh()
            answer = await sign_up(
                visitor, address.upper(), password="another long pass phrase", first_name="Eve"
            )
            assert answer.status_code == 303 and answer.headers["location"] == "/confirm"
            pages[address] = same_page((await visitor.follow(answer)).text, address)
        assert pages[EMAIL] == pages[NEW]
        sent = await s.deliver()
        owner = [m for m in sent if m["To"] == EMAIL]
        assert [m["Subject"] for m in owner] == ["You already have a mailvet account"]
        assert [m["Subject"] for m in sent if m["To"] == NEW] == ["Your mailvet confirmation code"]
        after = await s.account_row(EMAIL)
        assert before is not None and after is not None
        assert (after.password_hash, after.first_name) == (before.password_hash, "Ann")
        assert (await log_in(b.fresh(), EMAIL, PASSWORD)).status_code == 303


async def test_sign_in_says_the_same_for_an_unknown_address_and_a_wrong_password(
    tmp_path: Path,
) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        wrong = await log_in(b, EMAIL, "not the password at all")
        unknown = await log_in(b, NEW, "not the password at all")
        assert wrong.status_code == unknown.status_code == 400
        assert same_page(wrong.text, EMAIL) == same_page(unknown.text, NEW)
        assert "The email or password is not right." in wrong.text
