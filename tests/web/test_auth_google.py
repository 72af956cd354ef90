"""Google sign-in through the pages, against the local fake OpenID provider: a new account,
a link to an existing account only through a verified address, an unverified address
refused, and a callback that is not this browser's (wrong state, nothing pending, replayed)
refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from mailvet.adapters.oidc import GoogleOidc
from tests.fake_oidc import (  # noqa: F401 (fixtures)
    FakeOidcProvider,
    fake_oidc_fixture,
    fake_oidc_server,
)
from tests.web.auth_helpers import (
    AuthApp,
    Browser,
    auth_app,
    browser,
    confirmed_account,
    log_in,
    query_of,
    totp_now,
    turn_on_totp,
)
from tests.web.shell_helpers import HTTPS

pytestmark = pytest.mark.pipeline

FAILED = "Signing in with Google did not work"


@pytest.fixture
async def google_app(tmp_path: Path, fake_oidc: FakeOidcProvider) -> AsyncIterator[AuthApp]:
    oidc = GoogleOidc(
        discovery_url=fake_oidc.discovery_url,
        client_id=fake_oidc.client_id,
        client_secret=fake_oidc.client_secret,
    )
    async with auth_app(tmp_path, oidc=oidc) as s:
        yield s


async def to_provider(b: Browser, path: str = "/auth/google") -> str:
    """Start at the app; the provider's authorization URL it sends the browser to."""
    start = await b.get(path)
    assert start.status_code == 302, start.text[:500]
    return str(start.headers["location"])


async def at_provider(url: str) -> str:
    """The provider approves at once: the callback URL it sends the browser back to."""
    async with httpx.AsyncClient() as provider:
        answer = await provider.get(url)
    assert answer.status_code == 302, answer.text
    back = str(answer.headers["location"])
    assert back.startswith(f"{HTTPS}/auth/google/callback?")
    return back


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def google_sign_in(b: Browser) -> httpx.Response:
    return await b.get(local(await at_provider(await to_provider(b))))


async def test_a_new_google_account_is_made_confirmed(
    google_app: AuthApp, fake_oidc: FakeOidcProvider
) -> None:
    s = google_app
    async with browser(s.app) as b:
        login_page = await b.get("/login")
        assert 'href="/auth/google?next=' in login_page.text
        authorize = query_of(await to_provider(b))
        assert authorize["code_challenge_method"] == "S256"
        assert authorize["redirect_uri"] == f"{HTTPS}/auth/google/callback"
        assert authorize["state"] and authorize["nonce"]
        assert authorize["state"] not in str(b.jar)  # kept server-side, not in a cookie
        done = await google_sign_in(b)
        assert done.status_code == 303 and done.headers["location"] == "/app"
        assert await b.whoami() == "signed in"
        row = await s.account_row(fake_oidc.user.email)
        assert row is not None and row.google_sub == fake_oidc.user.sub
        assert row.confirmed_at is not None and row.password_hash is None
        assert (row.first_name, row.last_name) == ("Ann", "Lee")
        token_request = fake_oidc.token_requests[-1]
        assert token_request.had_verifier and token_request.answered == 200
        # a Google-only account sets a first password only after a fresh Google sign-in
        s.clock.advance(minutes=11)
        page = await b.get("/app/account/password")
        assert "Set a password" in page.text and 'href="/auth/google?next=' in page.text
        assert ">Current password</label>" not in page.text
        setup = await b.post("/app/account/two-factor/setup")
        assert setup.status_code == 400 and "Sign in with Google again first" in setup.text
        again = await google_sign_in(b)
        assert again.status_code == 303
        set_first = await b.post("/app/account/password", {"new_password": "my first pass phrase"})
        assert set_first.status_code == 303
        assert (
            await log_in(b.fresh(), fake_oidc.user.email, "my first pass phrase")
        ).status_code == 303


async def test_google_links_an_existing_account_through_a_verified_address(
    google_app: AuthApp, fake_oidc: FakeOidcProvider
) -> None:
    s = google_app
    async with browser(s.app) as b:
        await confirmed_account(s, b, fake_oidc.user.email)
        before = await s.account_row(fake_oidc.user.email)
        done = await google_sign_in(b)
        assert done.status_code == 303
        assert "now connected" in (await b.get("/")).text
        after = await s.account_row(fake_oidc.user.email)
        assert before is not None and after is not None
        assert after.id == before.id and after.google_sub == fake_oidc.user.sub


async def test_an_unverified_address_never_links_or_signs_in(
    google_app: AuthApp, fake_oidc: FakeOidcProvider
) -> None:
    s = google_app
    async with browser(s.app) as b:
        await confirmed_account(s, b, fake_oidc.user.email)
        fake_oidc.user.email_verified = False
        refused = await google_sign_in(b)
        assert refused.status_code == 303 and refused.headers["location"] == "/login"
        assert FAILED in (await b.get("/login")).text
        assert await b.whoami() is None
        row = await s.account_row(fake_oidc.user.email)
        assert row is not None and row.google_sub is None
        # nor is an account made for an unverified address nobody has
        fake_oidc.user.email = "new.person@example.com"
        await google_sign_in(b)
        assert await s.account_row("new.person@example.com") is None


async def test_a_callback_that_is_not_this_browsers_is_refused(
    google_app: AuthApp, fake_oidc: FakeOidcProvider
) -> None:
    s = google_app
    async with browser(s.app) as b:
        # the attacker's own authorization, delivered to the victim's browser
        attacker = b.fresh()
        stolen = await at_provider(await to_provider(attacker))
        victim = b.fresh()
        await to_provider(victim)  # the victim started one of their own
        refused = await victim.get(local(stolen))
        assert refused.status_code == 303 and refused.headers["location"] == "/login"
        assert await victim.whoami() is None
        # no sign-in pending at all
        nothing = await b.fresh().get(local(stolen))
        assert nothing.status_code == 303 and nothing.headers["location"] == "/login"
        # the right browser, but the callback replayed: one use only
        back = await at_provider(await to_provider(b))
        assert (await b.get(local(back))).status_code == 303
        await b.post("/logout")
        replay = await b.get(local(back))
        assert replay.headers["location"] == "/login" and await b.whoami() is None
        # the user said no at the provider
        fake_oidc.knobs.deny = True
        denied = await google_sign_in(b.fresh())
        assert denied.headers["location"] == "/login"
        assert await s.account_row(fake_oidc.user.email) is not None  # made once, above


async def test_google_then_the_second_factor(
    google_app: AuthApp, fake_oidc: FakeOidcProvider
) -> None:
    s = google_app
    async with browser(s.app) as b:
        await google_sign_in(b)
        secret, _ = await turn_on_totp(s, b)
        await b.post("/logout")
        s.clock.advance(seconds=60)
        first = await google_sign_in(b)
        assert first.headers["location"] == "/login/two-factor"
        assert await b.whoami() is None
        second = await b.post("/login/two-factor", {"code": totp_now(secret, s)})
        assert second.status_code == 303 and await b.whoami() == "signed in"


async def test_no_google_sign_in_when_it_is_not_set_up(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        assert "/auth/google" not in (await b.get("/login")).text
        assert "/auth/google" not in (await b.get("/signup")).text
        assert (await b.get("/auth/google")).status_code == 404
        assert (await b.get("/auth/google/callback?code=x&state=y")).status_code == 404


async def test_connect_google_links_the_signed_in_account_and_never_switches(
    google_app: AuthApp, fake_oidc: FakeOidcProvider
) -> None:
    """Review S6: "Connect Google" from the account page links the Google identity to the
    signed-in account (whatever the Google address), makes no account and keeps the browser
    signed in as itself; an identity another account has is refused."""
    s = google_app
    me, other = "me@example.com", "bob.stone@example.com"
    async with browser(s.app) as b:
        await confirmed_account(s, b, me)
        await confirmed_account(s, b.fresh(), other)
        assert (await log_in(b, me)).status_code == 303
        mine = b.cookie("mailvet_session")
        done = await google_sign_in_to(b, "/auth/google?next=/app/account")
        assert done.status_code == 303 and done.headers["location"] == "/app/account"
        assert "now connected" in (await b.get("/")).text
        assert b.cookie("mailvet_session") == mine  # still the same sign-in
        row = await s.account_row(me)
        assert row is not None and row.google_sub == fake_oidc.user.sub
        assert row.google_picture == fake_oidc.user.picture
        assert await s.account_row(fake_oidc.user.email) is None  # no account made
        # signed out, Google now signs in as that account
        await b.post("/logout")
        assert (await google_sign_in(b)).status_code == 303
        assert await s.account_row(fake_oidc.user.email) is None

        # another account cannot take the identity over
        bob = b.fresh()
        assert (await log_in(bob, other)).status_code == 303
        refused = await google_sign_in_to(bob, "/auth/google?next=/app/account")
        assert refused.headers["location"] == "/app/account"
        assert "connected to another mailvet account" in (await bob.get("/")).text
        bob_row = await s.account_row(other)
        assert bob_row is not None and bob_row.google_sub is None
        assert await bob.whoami() == "signed in"
        again = await s.account_row(me)
        assert again is not None and again.google_sub == fake_oidc.user.sub

        # a sign-in over 10 minutes old connects nothing (a way in is a sensitive change)
        fake_oidc.user.sub, fake_oidc.user.email = "208234567890123456789", "bob@gmail.example"
        s.clock.advance(minutes=11)
        stale = await google_sign_in_to(bob, "/auth/google?next=/app/account")
        assert stale.headers["location"] == "/app/account"
        assert "sign in again first" in (await bob.get("/")).text
        bob_row = await s.account_row(other)
        assert bob_row is not None and bob_row.google_sub is None


async def google_sign_in_to(b: Browser, path: str) -> httpx.Response:
    return await b.get(local(await at_provider(await to_provider(b, path))))
