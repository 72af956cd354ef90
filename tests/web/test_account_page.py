"""The account page (/app/account): names and newsletter, the picture (re-encoded without its
metadata, replaced, removed, refused when it is not a picture or too large; the Google
picture then Gravatar without one), the Google connection, and deleting the account (the
password and the ticked box; its files and sessions go, its job rows stay without names)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, update

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.session_models import WebSessionRow
from mailvet.pipeline import object_keys
from tests.web.account_helpers import account_app, picture_bytes, upload, writing
from tests.web.auth_helpers import PASSWORD, browser, confirmed_account, log_in
from tests.web.shell_helpers import look

pytestmark = pytest.mark.pipeline

EMAIL = "ann.lee@example.com"
XSS_NAME = '"><img src=x onerror=alert(1)>'
XSS_LAST = "<script>alert(2)</script>"


async def test_the_page_shows_and_saves_the_details(tmp_path: Path) -> None:
    async with account_app(tmp_path) as (s, _storage), browser(s.app) as b:
        anonymous = await b.get("/app/account")
        assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        page = await b.get("/app/account")
        assert page.status_code == 200
        for label in ("First name", "Last name", "Picture", "Password"):
            assert f">{label}</label>" in page.text
        assert '<h1 id="account-name">Ann Lee</h1>' in page.text
        assert 'src="https://www.gravatar.com/avatar/' in page.text  # no picture: Gravatar
        assert 'href="/app/account/password"' in page.text
        assert 'href="/app/account/two-factor"' in page.text
        assert '<strong id="two-factor-state">off</strong>' in page.text
        assert "Google is <strong>not connected</strong>" in page.text

        saved = await b.post(
            "/app/account/profile",
            {"first_name": XSS_NAME, "last_name": XSS_LAST, "newsletter": "on"},
        )
        assert saved.status_code == 303 and saved.headers["location"] == "/app/account"
        row = await s.account_row(EMAIL)
        assert row is not None and row.first_name == XSS_NAME and row.last_name == XSS_LAST
        assert row.newsletter
        again = await b.get("/app/account")
        assert "Your details are saved." in again.text
        assert XSS_NAME not in again.text and XSS_LAST not in again.text
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in again.text
        assert 'id="newsletter" name="newsletter" type="checkbox" value="on" checked' in again.text

        # unticked: off again
        await b.post("/app/account/profile", {"first_name": "Ann", "last_name": "Lee"})
        row = await s.account_row(EMAIL)
        assert row is not None and not row.newsletter and row.first_name == "Ann"


async def test_a_picture_is_re_encoded_replaced_and_removed(tmp_path: Path) -> None:
    async with account_app(tmp_path) as (s, storage), browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        answer = await upload(b, "/app/account/picture", "me.png", picture_bytes("PNG"))
        assert answer.status_code == 303, answer.text
        row = await s.account_row(EMAIL)
        assert row is not None and row.avatar_key is not None
        first_key = row.avatar_key
        assert first_key.startswith(f"avatars/{row.id}/") and first_key.endswith(".webp")
        stored = storage.objects[first_key]
        assert stored[:4] == b"RIFF" and stored[8:12] == b"WEBP"
        assert b"secret-metadata" not in stored

        page = await b.get("/app/account")
        version = first_key.rsplit("/", 1)[1].removesuffix(".webp")
        assert f'src="/app/account/picture?v={version}"' in page.text
        served = await b.get(f"/app/account/picture?v={version}")
        assert served.status_code == 200 and served.content == stored
        assert served.headers["content-type"] == "image/webp"
        assert served.headers["cache-control"].startswith("private")
        # another browser, signed out: no picture of anyone
        stranger = await b.fresh().get(f"/app/account/picture?v={version}")
        assert stranger.status_code in (302, 303) and "/login" in stranger.headers["location"]

        # a JPEG replaces it: the old object goes
        second = await upload(b, "/app/account/picture", "me.jpg", picture_bytes("JPEG"))
        assert second.status_code == 303
        row = await s.account_row(EMAIL)
        assert row is not None and row.avatar_key not in (None, first_key)
        assert first_key not in storage.objects and row.avatar_key in storage.objects

        removed = await b.post("/app/account/picture/remove")
        assert removed.status_code == 303
        row = await s.account_row(EMAIL)
        assert row is not None and row.avatar_key is None
        assert not [key for key in storage.objects if key.startswith("avatars/")]


async def test_what_is_not_a_picture_is_refused(tmp_path: Path) -> None:
    async with account_app(tmp_path) as (s, storage), browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        fake = await upload(b, "/app/account/picture", "x.png", b"<svg onload=alert(1)>")
        assert fake.status_code == 400
        assert "Only PNG, JPEG, WebP or GIF pictures can be used." in fake.text
        big = picture_bytes("PNG") + b"\0" * (2 * 1024 * 1024)
        too_large = await upload(b, "/app/account/picture", "big.png", big)
        assert too_large.status_code == 400 and "larger than 2 MB" in too_large.text
        huge = await upload(b, "/app/account/picture", "huge.png", b"\0" * (3 * 1024 * 1024))
        assert huge.status_code == 413
        nothing = await b.post("/app/account/picture")
        assert nothing.status_code == 400 and "Choose a picture" in nothing.text
        row = await s.account_row(EMAIL)
        assert row is not None and row.avatar_key is None
        assert not storage.objects


async def test_google_picture_and_connection(tmp_path: Path) -> None:
    async with account_app(tmp_path) as (s, _storage), browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        picture = "https://lh3.googleusercontent.com/a/photo"
        async with writing(s.url) as session:
            await session.execute(
                update(AccountRow)
                .where(AccountRow.email == EMAIL)
                .values(google_sub="g-123", google_picture=picture)
            )
        page = await b.get("/app/account")
        assert f'src="{picture}"' in page.text
        assert "Your Google account is <strong>connected</strong>" in page.text
        off = await b.post("/app/account/google/disconnect")
        assert off.status_code == 303
        row = await s.account_row(EMAIL)
        assert row is not None and row.google_sub is None and row.google_picture is None
        page = await b.get("/app/account")
        assert "Google is <strong>not connected</strong>" in page.text


async def test_deleting_the_account(tmp_path: Path) -> None:
    async with account_app(tmp_path) as (s, storage), browser(s.app) as b:
        other = b.fresh()
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        await log_in(other, EMAIL)
        await upload(b, "/app/account/picture", "me.png", picture_bytes("PNG"))
        row = await s.account_row(EMAIL)
        assert row is not None
        account_id = row.id
        job_id = uuid.uuid4().hex
        async with writing(s.url) as session:
            session.add(
                JobRow(
                    id=job_id,
                    filename="customers.csv",
                    email_column="email",
                    checks="syntax",
                    status="file_completed",
                    owner=account_id,
                    rows_total=3,
                    rows_done=3,
                )
            )
        await storage.put_bytes(object_keys.uploaded(job_id), b"email\na@example.com\n")

        unticked = await b.post("/app/account/delete", {"password": PASSWORD})
        assert unticked.status_code == 400 and "Tick the box" in unticked.text
        wrong = await b.post(
            "/app/account/delete", {"password": "not the password", "understood": "on"}
        )
        assert wrong.status_code == 400 and "The password is not right." in wrong.text
        assert await s.account_row(EMAIL) is not None

        s.clock.advance(minutes=1)
        gone = await b.post("/app/account/delete", {"password": PASSWORD, "understood": "on"})
        assert gone.status_code == 303 and gone.headers["location"] == "/"
        assert await s.account_row(EMAIL) is None
        landing = await b.get("/")
        assert "Your account and its files are deleted." in landing.text
        assert await b.whoami() is None and await other.whoami() is None
        assert not storage.objects  # the picture and the job's files
        async with look(s.url) as database, database.session_maker() as session:
            job = await session.get(JobRow, job_id)
            assert job is not None and job.filename == "" and job.rows_total == 3
            left = await session.execute(
                select(WebSessionRow).where(WebSessionRow.account_id == account_id)
            )
            assert left.first() is None
        refused = await log_in(b, EMAIL)
        assert refused.status_code == 400


async def test_deleting_after_too_many_wrong_passwords_is_refused_with_retry_after(
    tmp_path: Path,
) -> None:
    """The deletion's password counts as a sign-in of the address: once five are wrong the
    right one is refused too, 429 with Retry-After (as the other re-authentications)."""
    async with account_app(tmp_path) as (s, _storage), browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        for _ in range(5):
            wrong = await b.post(
                "/app/account/delete", {"password": "not the password", "understood": "on"}
            )
            assert wrong.status_code == 400 and "The password is not right." in wrong.text
        refused = await b.post("/app/account/delete", {"password": PASSWORD, "understood": "on"})
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= 15 * 60
        assert "Too many wrong passwords. Try again in" in refused.text
        assert await s.account_row(EMAIL) is not None
        s.clock.advance(minutes=15)
        gone = await b.post("/app/account/delete", {"password": PASSWORD, "understood": "on"})
        assert gone.status_code == 303 and await s.account_row(EMAIL) is None


async def test_a_google_only_account_deletes_after_a_recent_sign_in(tmp_path: Path) -> None:
    async with account_app(tmp_path) as (s, _storage), browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        async with writing(s.url) as session:
            await session.execute(
                update(AccountRow)
                .where(AccountRow.email == EMAIL)
                .values(password_hash=None, google_sub="g-1")
            )
        page = await b.get("/app/account")
        assert 'id="delete-password"' not in page.text
        s.clock.advance(minutes=11)
        stale = await b.post("/app/account/delete", {"understood": "on"})
        assert stale.status_code == 400 and "Sign in with Google again" in stale.text
        assert await s.account_row(EMAIL) is not None
        s.clock.advance(minutes=-10)  # back to a minute after the sign-in
        done = await b.post("/app/account/delete", {"understood": "on"})
        assert done.status_code == 303 and await s.account_row(EMAIL) is None


async def test_an_account_with_a_running_list_is_not_deleted(tmp_path: Path) -> None:
    """The page says why (a list is being validated) instead of failing; nothing goes."""
    async with account_app(tmp_path) as (s, storage), browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        row = await s.account_row(EMAIL)
        assert row is not None
        job_id = uuid.uuid4().hex
        async with writing(s.url) as session:
            session.add(
                JobRow(
                    id=job_id,
                    filename="customers.csv",
                    email_column="email",
                    checks="syntax",
                    status="file_validation_in_progress",
                    owner=row.id,
                    rows_total=3,
                    rows_done=1,
                )
            )
        await storage.put_bytes(object_keys.uploaded(job_id), b"email\na@example.com\n")

        refused = await b.post("/app/account/delete", {"password": PASSWORD, "understood": "on"})
        assert refused.status_code == 400
        assert "still being validated" in refused.text
        assert await s.account_row(EMAIL) is not None
        assert await b.whoami() is not None
        assert storage.objects  # the list's file is still there
