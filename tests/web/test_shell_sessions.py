"""Server-side sessions: no fixation, rotation at sign-in and sign-out, cookie attributes,
no writes for anonymous visitors, sign out everywhere, expiry, the login guard."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from mailvet.services.accounts import create_account
from mailvet.services.sessions import end_all_sessions, hash_token
from mailvet.web.context import housekeeping_once
from mailvet.web.sessions import requires_admin
from tests.web.shell_helpers import (
    cheap_hasher,
    client,
    counter_total,
    csrf_token,
    look,
    session_area,
    session_cookie,
    session_rows,
    set_cookie_headers,
    shell,
)

pytestmark = pytest.mark.pipeline

ACCOUNT = "a" * 32
OTHER = "b" * 32


async def post(c: AsyncTestClient[Litestar], path: str, token: str) -> str | None:
    """POST with the CSRF header; the session cookie the answer set, if any."""
    answer = await c.post(path, headers={"x-csrftoken": token})
    assert answer.status_code == 200, answer.text
    return session_cookie(answer.headers)


async def whoami(c: AsyncTestClient[Litestar]) -> str | None:
    answer = await c.get("/t/whoami")
    assert answer.status_code == 200
    account: str | None = answer.json()["account"]
    return account


async def test_an_anonymous_visit_sets_no_session_and_writes_nothing(tmp_path: Path) -> None:
    async with shell(tmp_path) as s:
        async with client(s.app) as c:
            for path in ("/", "/pricing", "/docs", "/t/whoami", "/static/app.css"):
                answer = await c.get(path)
                assert answer.status_code == 200, path
                assert session_cookie(answer.headers) is None, path
        assert await session_rows(s.url) == []


async def test_a_forged_session_cookie_is_never_adopted(tmp_path: Path) -> None:
    forged = "attacker-chosen-token"
    async with shell(tmp_path) as s:
        async with client(s.app) as c:
            token = await csrf_token(c)
            c.cookies.set("mailvet_session", forged, domain="testserver.local")
            # nothing to keep: the unknown cookie is cleared, not kept
            cleared = await c.get("/t/whoami")
            assert cleared.json() == {"account": None}
            assert session_cookie(cleared.headers) == ""
            c.cookies.set("mailvet_session", forged, domain="testserver.local")
            issued = await post(c, f"/t/sign-in/{ACCOUNT}", token)
            assert issued and issued != forged
            assert await whoami(c) == ACCOUNT
        rows = await session_rows(s.url)
        assert [row.token_hash for row in rows] == [hash_token(issued)]
        assert hash_token(forged) not in {row.token_hash for row in rows}
        # the attacker's browser, still holding the forged token, is not signed in
        async with client(s.app) as attacker:
            attacker.cookies.set("mailvet_session", forged, domain="testserver.local")
            assert await whoami(attacker) is None


async def test_sign_in_moves_the_session_to_a_fresh_token(tmp_path: Path) -> None:
    async with shell(tmp_path) as s:
        async with client(s.app) as c:
            token = await csrf_token(c)
            before = await post(c, "/t/flash", token)  # an anonymous session with data
            assert before
            after = await post(c, f"/t/sign-in/{ACCOUNT}", token)
            assert after and after != before
            page = await c.get("/", headers={"accept": "text/html"})
            assert "saved &lt;b&gt;" in page.text  # the data came along (and is escaped)
        rows = await session_rows(s.url)
        assert [row.token_hash for row in rows] == [hash_token(after)]
        assert rows[0].account_id == ACCOUNT
        assert rows[0].authenticated_at == s.clock.now
        async with client(s.app) as old:  # whoever saw the pre-sign-in token
            old.cookies.set("mailvet_session", before, domain="testserver.local")
            assert await whoami(old) is None


async def test_the_cookie_is_httponly_lax_and_secure_on_https(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        token = await csrf_token(c)
        answer = await c.post(f"/t/sign-in/{ACCOUNT}", headers={"x-csrftoken": token})
        (cookie,) = [v for v in set_cookie_headers(answer.headers) if "mailvet_session" in v]
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "secure", "path=/"} <= attributes
        assert f"max-age={s.web.settings.web.session_max_age}" in attributes


async def test_the_cookie_is_not_secure_on_plain_http(tmp_path: Path) -> None:
    env = {"MAILVET_PUBLIC_URL": "http://127.0.0.1:8000"}
    async with shell(tmp_path, env) as s, client(s.app, "http://testserver.local") as c:
        token = await csrf_token(c)
        answer = await c.post(f"/t/sign-in/{ACCOUNT}", headers={"x-csrftoken": token})
        cookies = set_cookie_headers(answer.headers)
        assert any("mailvet_session" in v for v in cookies)
        assert not any("secure" in v.lower() for v in cookies)
        assert await whoami(c) == ACCOUNT


async def test_sign_out_deletes_the_row_and_clears_the_cookie(tmp_path: Path) -> None:
    async with shell(tmp_path) as s:
        async with client(s.app) as c:
            token = await csrf_token(c)
            signed = await post(c, f"/t/sign-in/{ACCOUNT}", token)
            assert signed
            assert await post(c, "/t/sign-out", token) == ""
            assert await whoami(c) is None
        assert await session_rows(s.url) == []
        async with client(s.app) as replay:
            replay.cookies.set("mailvet_session", signed, domain="testserver.local")
            assert await whoami(replay) is None


async def test_sign_out_everywhere_ends_the_other_sessions_of_the_account(
    tmp_path: Path,
) -> None:
    async with shell(tmp_path) as s:
        async with client(s.app) as c:  # three browsers: one client, three session cookies
            token = await csrf_token(c)
            browsers = {}
            for name, account in (("laptop", ACCOUNT), ("phone", ACCOUNT), ("other", OTHER)):
                c.cookies.delete("mailvet_session")
                browsers[name] = await post(c, f"/t/sign-in/{account}", token)

            def be(name: str) -> None:
                c.cookies.set("mailvet_session", browsers[name] or "", domain="testserver.local")

            be("laptop")
            answer = await c.post("/t/end-others", headers={"x-csrftoken": token})
            assert answer.json() == {"ended": 1}
            assert await whoami(c) == ACCOUNT
            be("phone")
            assert await whoami(c) is None
            be("other")
            assert await whoami(c) == OTHER
        assert sorted(row.account_id or "" for row in await session_rows(s.url)) == [
            ACCOUNT,
            OTHER,
        ]


async def test_a_session_expires_after_its_max_age(tmp_path: Path) -> None:
    async with shell(tmp_path, {"MAILVET_SESSION_MAX_AGE": "3600"}) as s, client(s.app) as c:
        await post(c, f"/t/sign-in/{ACCOUNT}", await csrf_token(c))
        s.clock.advance(seconds=3599)
        assert await whoami(c) == ACCOUNT
        s.clock.advance(seconds=1)
        assert await whoami(c) is None


async def test_requires_login_redirects_pages_and_refuses_json(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        page = await c.get(
            "/t/private?x=1", headers={"accept": "text/html"}, follow_redirects=False
        )
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Ft%2Fprivate%3Fx%3D1"
        api = await c.get("/t/private")
        assert api.status_code == 401
        assert api.json() == {"error": "sign in first"}
        await post(c, f"/t/sign-in/{ACCOUNT}", await csrf_token(c))
        assert (await c.get("/t/private")).text == "secret"


async def test_an_unchanged_session_is_not_rewritten_on_every_request(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        await post(c, f"/t/sign-in/{ACCOUNT}", await csrf_token(c))
        (first,) = await session_rows(s.url)
        s.clock.advance(seconds=60)
        await whoami(c)
        (same,) = await session_rows(s.url)
        assert same.last_seen_at == first.last_seen_at
        s.clock.advance(minutes=5)
        await whoami(c)
        (touched,) = await session_rows(s.url)
        assert touched.last_seen_at == s.clock.now


async def test_requires_admin_reads_the_role_from_the_account(tmp_path: Path) -> None:
    @get("/admin-only", guards=[requires_admin])
    async def admin_only() -> str:
        return "admin"

    async with shell(tmp_path, areas=[session_area(), admin_only]) as s:
        async with look(s.url) as database, database.session_maker() as session, session.begin():
            admin = await create_account(
                session,
                email="root@example.com",
                password=None,
                admin=True,
                confirmed=True,
                credits=0,
                hasher=cheap_hasher(),
                now=s.clock.now,
            )
            user = await create_account(
                session,
                email="ann@example.com",
                password=None,
                credits=0,
                hasher=cheap_hasher(),
                now=s.clock.now,
            )
        async with client(s.app) as c:
            token = await csrf_token(c)
            assert (await c.get("/admin-only")).status_code == 401
            await post(c, f"/t/sign-in/{user.id}", token)
            refused = await c.get("/admin-only", headers={"accept": "text/html"})
            assert refused.status_code == 403
            assert "administrators only" in refused.text
            await post(c, f"/t/sign-in/{admin.id}", token)
            assert (await c.get("/admin-only")).text == "admin"
            await post(c, f"/t/sign-in/{'e' * 32}", token)  # an id with no account
            assert (await c.get("/admin-only")).status_code == 403


async def test_housekeeping_deletes_expired_sessions_and_stale_counters(tmp_path: Path) -> None:
    env = {"MAILVET_SESSION_MAX_AGE": "3600", "MAILVET_WEB_RATE_LIMIT": "100/minute"}
    async with shell(tmp_path, env) as s:
        async with client(s.app) as c:
            await post(c, f"/t/sign-in/{ACCOUNT}", await csrf_token(c))
            s.clock.advance(minutes=30)
            c.cookies.delete("mailvet_session")
            await post(c, f"/t/sign-in/{OTHER}", await csrf_token(c))
        s.clock.advance(minutes=31)  # the first expired, the second lives
        assert await housekeeping_once(s.web) == (1, 0)
        assert [row.account_id for row in await session_rows(s.url)] == [OTHER]
        s.clock.advance(days=3)
        assert await housekeeping_once(s.web) == (1, 1)  # the client's one counter row
        assert await session_rows(s.url) == []
        assert await counter_total(s.url) == 0


async def test_a_session_ended_during_a_request_is_not_written_back(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        token = await csrf_token(c)
        await post(c, f"/t/sign-in/{ACCOUNT}", token)
        answer = await c.post("/t/end-all-and-flash", headers={"x-csrftoken": token})
        assert answer.json() == {"ended": 1}
        assert session_cookie(answer.headers) is None
        assert await session_rows(s.url) == []  # the flash did not bring the row back
        assert await whoami(c) is None


async def test_a_session_ended_elsewhere_leaves_an_anonymous_fresh_one(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        token = await csrf_token(c)
        signed = await post(c, f"/t/sign-in/{ACCOUNT}", token)
        async with look(s.url) as database, database.session_maker() as session, session.begin():
            assert await end_all_sessions(session, ACCOUNT) == 1  # from another browser
        fresh = await post(c, "/t/flash", token)
        assert fresh and fresh != signed
        assert [row.account_id for row in await session_rows(s.url)] == [None]
        assert await whoami(c) is None
