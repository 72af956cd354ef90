"""The limits of the sign-in forms: 5 failed passwords per account per 15 minutes, 30
attempts per IP per minute, the second factor's 5 failures, sign-ups per IP, and the
confirmation code's own rules (5 wrong entries void it; resent 60 s apart, at most 5
times, the allowance renewed a day after the last mail). Every refusal is 429 with
Retry-After."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.testing import AsyncTestClient
from litestar.types import Receive, Scope, Send

from mailvet.web.throttle import client_ip
from tests.web.auth_helpers import (
    HTML,
    PASSWORD,
    Browser,
    auth_app,
    browser,
    confirmed_account,
    log_in,
    sign_up,
    totp_now,
    turn_on_totp,
)
from tests.web.shell_helpers import CSRF_INPUT, HTTPS

pytestmark = pytest.mark.pipeline

EMAIL = "ann.lee@example.com"
OTHER = "bob.stone@example.com"


def refused(answer: httpx.Response, *, at_most: int) -> int:
    assert answer.status_code == 429, (answer.status_code, answer.text[:500])
    wait = int(answer.headers["retry-after"])
    assert 0 < wait <= at_most
    assert "Try again in" in answer.text
    return wait


async def test_five_failed_passwords_lock_the_account_for_15_minutes(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await confirmed_account(s, b, OTHER)
        for _ in range(5):
            wrong = await log_in(b, EMAIL, "not the password at all")
            assert wrong.status_code == 400
        # now even the right password waits, and says how long
        locked = await log_in(b, EMAIL, PASSWORD)
        refused(locked, at_most=15 * 60)
        assert await b.whoami() is None
        # another account from the same IP is not locked
        assert (await log_in(b.fresh(), OTHER)).status_code == 303
        s.clock.advance(minutes=15)
        assert (await log_in(b, EMAIL)).status_code == 303


async def test_thirty_attempts_per_ip_per_minute(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        for n in range(30):  # different addresses: only the per-IP count grows
            answer = await b.post(
                "/login", {"email": f"nobody{n}@example.com", "password": "whatever it is"}
            )
            assert answer.status_code == 400, n
        wait = refused(await log_in(b, EMAIL), at_most=60)
        s.clock.advance(seconds=wait)
        assert (await log_in(b, EMAIL)).status_code == 303


async def test_five_wrong_second_factors_lock_the_account(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        secret, _ = await turn_on_totp(s, b)
        await b.post("/logout")
        s.clock.advance(seconds=60)
        await log_in(b, EMAIL)
        for _ in range(5):
            assert (await b.post("/login/two-factor", {"code": "000000"})).status_code == 400
        right = totp_now(secret, s)
        refused(await b.post("/login/two-factor", {"code": right}), at_most=15 * 60)
        assert await b.whoami() is None


async def test_sign_ups_per_ip(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        for n in range(10):
            answer = await sign_up(b, f"person{n}@example.com")
            assert answer.status_code == 303, n
        refused(await sign_up(b, "one.more@example.com"), at_most=3600)
        assert await s.account_row("one.more@example.com") is None


async def signed_up_and_in(b: Browser, email: str) -> None:
    assert (await sign_up(b, email)).status_code == 303
    assert (await log_in(b, email)).status_code == 303  # unconfirmed: signed in, reminded


async def test_the_code_resends_60_seconds_apart_and_the_old_code_stops(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await signed_up_and_in(b, EMAIL)  # how its code stands: told to the account
        first = await s.code_for(EMAIL)
        too_soon = await b.post("/confirm/resend")
        refused(too_soon, at_most=60)
        s.clock.advance(seconds=60)
        resent = await b.post("/confirm/resend")
        assert resent.status_code == 303 and resent.headers["location"] == "/confirm"
        page = await b.follow(resent)
        assert "We sent a new code" in page.text
        second = await s.code_for(EMAIL)
        if second != first:  # one in a million they are equal
            assert (await b.post("/confirm", {"code": first})).status_code == 400
        for _ in range(4):  # 5 resends in all
            s.clock.advance(seconds=61)
            assert (await b.post("/confirm/resend")).status_code == 303
        s.clock.advance(seconds=61)
        refused(await b.post("/confirm/resend"), at_most=24 * 3600)
        done = await b.post("/confirm", {"code": await s.code_for(EMAIL)})
        assert done.status_code == 303


async def test_spent_resends_say_when_the_allowance_renews_and_it_does(tmp_path: Path) -> None:
    """Resends used up and the code voided: the account is not stuck; the refusal says why
    and when (wait_text), and a day after the last mail a new code confirms it."""
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await signed_up_and_in(b, EMAIL)
        for _ in range(5):
            s.clock.advance(seconds=61)
            assert (await b.post("/confirm/resend")).status_code == 303
        code = await s.code_for(EMAIL)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for _ in range(5):
            await b.post("/confirm", {"code": wrong})
        s.clock.advance(minutes=20)
        spent = await b.post("/confirm/resend")
        wait = refused(spent, at_most=24 * 3600)
        assert wait == 24 * 3600 - 20 * 60
        assert "The 5 new codes allowed are used up" in spent.text
        assert "Try again in 24 hours." in spent.text
        s.clock.advance(seconds=wait)
        renewed = await b.post("/confirm/resend")
        assert renewed.status_code == 303
        assert "We sent a new code" in (await b.follow(renewed)).text
        done = await b.post("/confirm", {"code": await s.code_for(EMAIL)})
        assert done.status_code == 303
        row = await s.account_row(EMAIL)
        assert row is not None and row.confirmed_at is not None


async def test_five_wrong_codes_void_it(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await signed_up_and_in(b, EMAIL)  # how its code stands: told to the account
        code = await s.code_for(EMAIL)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        first = await b.post("/confirm", {"code": wrong})
        assert first.status_code == 400 and "4 more tries" in first.text
        for _ in range(4):
            await b.post("/confirm", {"code": wrong})
        voided = await b.post("/confirm", {"code": code})
        assert voided.status_code == 400 and "no longer works" in voided.text
        row = await s.account_row(EMAIL)
        assert row is not None and row.confirmed_at is None
        # a new code (a minute later) works
        s.clock.advance(seconds=60)
        assert (await b.post("/confirm/resend")).status_code == 303
        assert (await b.post("/confirm", {"code": await s.code_for(EMAIL)})).status_code == 303


async def test_an_expired_code_asks_for_a_new_one(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await signed_up_and_in(b, EMAIL)  # how its code stands: told to the account
        code = await s.code_for(EMAIL)
        s.clock.advance(minutes=15)
        late = await b.post("/confirm", {"code": code})
        assert late.status_code == 400 and "expired" in late.text


@pytest.mark.unit
def test_an_ipv6_client_is_counted_by_its_64() -> None:
    def key(host: str) -> str:
        scope: dict[str, Any] = {"type": "http", "client": (host, 1234), "headers": []}
        return client_ip(ASGIConnection[Any, Any, Any, Any](cast("Scope", scope)))

    assert key("2001:db8:1:2:aaaa::1") == key("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert key("::ffff:192.0.2.7") == key("192.0.2.7") == "192.0.2.7"
    assert key("192.0.2.8") == "192.0.2.8"
    assert key("testclient") == "testclient"


class FromHeader:
    """The app as reached from the client address in the `x-client` header (the test
    client always says "testclient")."""

    def __init__(self, app: Litestar) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            for name, value in scope["headers"]:
                if name == b"x-client":
                    scope = cast("Scope", {**scope, "client": (value.decode(), 1234)})
        await self.app(scope, receive, send)


async def test_rotating_ipv6_addresses_of_one_64_share_the_sign_in_limit(
    tmp_path: Path,
) -> None:
    async with (
        auth_app(tmp_path) as s,
        AsyncTestClient(cast("Litestar", FromHeader(s.app)), base_url=HTTPS) as c,
    ):
        token = CSRF_INPUT.search((await c.get("/login", headers=HTML)).text)
        assert token is not None
        for n in range(31):  # a new source address of the same /64 each time
            answer = await c.post(
                "/login",
                data={
                    "_csrf_token": token.group(1),
                    "email": f"nobody{n}@example.com",
                    "password": "whatever it is",
                },
                headers={**HTML, "x-client": f"2001:db8:1:2::{n + 1:x}"},
            )
            assert answer.status_code == (429 if n == 30 else 400), n
        # another /64 is another client
        other = await c.post(
            "/login",
            data={"_csrf_token": token.group(1), "email": EMAIL, "password": "whatever it is"},
            headers={**HTML, "x-client": "2001:db8:1:3::1"},
        )
        assert other.status_code == 400


def code_error(answer: httpx.Response, address: str) -> tuple[int, str]:
    found = re.search(r'<p class="field-error"[^>]*>(.*?)</p>', answer.text, re.S)
    return answer.status_code, (found.group(1) if found else "").replace(address, "<address>")


async def test_confirm_and_resend_tell_a_stranger_nothing_about_an_address(
    tmp_path: Path,
) -> None:
    """Review S3/S4: from a browser that is not the account's, an address waiting for its
    code and an address without an account answer alike, entry after entry and resend after
    resend (no countdown, no voided code, no 429 for a resend too soon)."""
    async with auth_app(tmp_path) as s, browser(s.app) as owner:
        await sign_up(owner, EMAIL)  # waits for its code
        answers: dict[str, list[tuple[int, str]]] = {}
        for address in (EMAIL, "nobody.here@example.com"):
            stranger = owner.fresh()
            await stranger.get("/confirm")
            seen = []
            for _ in range(6):
                wrong = await stranger.post("/confirm", {"email": address, "code": "000001"})
                seen.append(code_error(wrong, address))
            for _ in range(3):  # the first within the minute of the sign-up's code
                resent = await stranger.post("/confirm/resend", {"email": address})
                page = await stranger.follow(resent)
                notes = re.findall(r'class="flash[^"]*"[^>]*>(.*?)<', page.text, re.S)
                seen.append((resent.status_code, resent.headers.get("location", "")))
                seen.append((page.status_code, " ".join(notes).replace(address, "<address>")))
            answers[address] = seen
        known, unknown = answers.values()
        assert known == unknown
        assert known[0][0] == 400 and "more tr" not in known[0][1]
        assert known[6] == (303, "/confirm")
        assert "If an account is waiting for a code at <address>" in known[7][1]
        assert (await s.account_row(EMAIL)) is not None
