"""The webhooks page (/app/webhooks) of the SaaS as `mailvet run web` serves it: the default
URL (checked, escaped), the signing secret shown to its owner alone and rotated after a
recent sign-in, the deliveries of the account alone with each attempt, the forms' CSRF
token, and the web role's own sender delivering an event signed with the secret the page
shows to a receiver on 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import sqlite3
import uuid
from pathlib import Path

import pytest

from mailvet.adapters.db.models import JobRow
from mailvet.services import webhooks
from tests.waiting import until
from tests.web.account_helpers import writing
from tests.web.auth_helpers import PASSWORD, Browser, browser, log_in
from tests.web.shell_helpers import Clock, look
from tests.web.site_helpers import SiteUnderTest, site_under_test
from tests.webhook_helpers import receiving

pytestmark = pytest.mark.pipeline

ANN = "ann.lee@example.com"
BOB = "bob@example.com"
PRIVATE_OK = {"MAILVET_WEBHOOK_ALLOW_PRIVATE": "true"}
SECRET = re.compile(r'id="webhook-secret" type="text" value="(whsec_[A-Za-z0-9_-]{43})"')
HOSTILE = 'https://hooks.example/"><script>alert(1)</script>'


def statuses(s: SiteUnderTest) -> list[str]:
    """The deliveries' states, read with the stdlib (a condition for `until`)."""
    path = s.url.removeprefix("sqlite+aiosqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [status for (status,) in conn.execute("SELECT status FROM webhook_deliveries")]


def secret_on(page: str) -> str:
    found = SECRET.search(page)
    assert found is not None, page
    return found.group(1)


async def save(b: Browser, url: str) -> int:
    await b.get("/app/webhooks")
    return (await b.post("/app/webhooks", {"url": url})).status_code


async def completed_job(s: SiteUnderTest, owner: str, clock: Clock) -> str:
    """A job of `owner` that has just completed, its event queued as the result generator
    queues it (LazyJobEvents); the job's id."""
    job_id = uuid.uuid4().hex
    async with writing(s.url) as session:
        session.add(
            JobRow(
                id=job_id,
                filename="list.csv",
                checks="smtp",
                status="file_completed",
                owner=owner,
                created_at=clock.now,
                updated_at=clock.now,
            )
        )
    async with look(s.url) as database, database.unit_of_work(write=True) as session:
        assert await webhooks.queue_job_event(session, job_id, now=clock.now) is not None
    return job_id


async def test_set_the_url_and_get_signed_events(tmp_path: Path) -> None:
    clock = Clock()
    async with (
        receiving([200]) as receiver,
        site_under_test(tmp_path, PRIVATE_OK, clock=clock) as s,
        browser(s.site.app) as b,
    ):
        anonymous = await b.get("/app/webhooks")
        assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]
        ann = await s.account(ANN)
        assert (await log_in(b, ANN)).status_code == 303
        dashboard = await b.get("/app")
        assert '<a href="/app/webhooks">Webhooks</a>' in dashboard.text
        page = await b.get("/app/webhooks")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert '<label for="webhook-url">' in page.text and 'id="no-deliveries"' in page.text
        secret = secret_on(page.text)
        assert secret_on((await b.get("/app/webhooks")).text) == secret  # made once

        assert await save(b, f"{receiver.url}/events") == 303
        saved = await b.get("/app/webhooks")
        assert f'value="{receiver.url}/events"' in saved.text
        job_id = await completed_job(s, ann.id, clock)
        await until(lambda: receiver.received)  # the site's own sender, in the app's loop
        [got] = receiver.received
        t, v1 = (part.split("=", 1)[1] for part in got.headers["mailvet-signature"].split(","))
        assert hmac.compare_digest(
            v1, hmac.new(secret.encode(), f"{t}.".encode() + got.body, hashlib.sha256).hexdigest()
        )
        assert json.loads(got.body)["data"]["job"]["id"] == job_id

        await until(lambda: statuses(s) == ["delivered"])  # recorded after the answer
        shown = await b.get("/app/webhooks")
        assert f'href="/app/jobs/{job_id}"' in shown.text
        assert "HTTP 200" in shown.text and "job.completed" in shown.text

        assert await save(b, "") == 303  # removed
        assert 'value=""' in (await b.get("/app/webhooks")).text


async def test_refused_urls_and_a_hostile_one_escaped(tmp_path: Path) -> None:
    async with site_under_test(tmp_path) as s, browser(s.site.app) as b:  # private refused
        await s.account(ANN)
        assert (await log_in(b, ANN)).status_code == 303
        await b.get("/app/webhooks")
        for url, reason in (
            ("http://127.0.0.1:8080/hook", "private, loopback or reserved"),
            ("http://2130706433/", "private, loopback or reserved"),
            ("https://user:pw@hooks.example/", "user name or password"),
            ("ftp://hooks.example/", "https:// or http://"),
            (HOSTILE, "private, loopback or reserved"),  # the fake DNS answers 192.0.2.1
        ):
            answer = await b.post("/app/webhooks", {"url": url})
            assert answer.status_code == 400, url
            assert reason in answer.text, url
        assert "<script>alert(1)</script>" not in answer.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
        assert 'value=""' in (await b.get("/app/webhooks")).text  # nothing was saved

    clock = Clock()
    async with (
        site_under_test(tmp_path / "two", PRIVATE_OK, clock=clock) as s,
        browser(s.site.app) as b,
    ):
        ann = await s.account(ANN)
        assert (await log_in(b, ANN)).status_code == 303
        assert await save(b, HOSTILE) == 303  # a valid URL where private hosts are allowed
        await completed_job(s, ann.id, clock)
        page = await b.get("/app/webhooks")
        assert "<script>alert(1)</script>" not in page.text
        assert page.text.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2  # form and table


async def test_each_account_sees_only_its_own(tmp_path: Path) -> None:
    clock = Clock()
    async with site_under_test(tmp_path, PRIVATE_OK, clock=clock) as s, browser(s.site.app) as b:
        ann = await s.account(ANN)
        await s.account(BOB)
        assert (await log_in(b, ANN)).status_code == 303
        assert await save(b, "http://127.0.0.1:9/ann-only") == 303
        ann_secret = secret_on((await b.get("/app/webhooks")).text)
        job_id = await completed_job(s, ann.id, clock)
        bob = b.fresh()
        assert (await log_in(bob, BOB)).status_code == 303
        page = await bob.get("/app/webhooks")
        assert secret_on(page.text) != ann_secret and ann_secret not in page.text
        assert 'id="no-deliveries"' in page.text
        assert job_id not in page.text and "ann-only" not in page.text
        assert job_id in (await b.get("/app/webhooks")).text  # Ann's own, shown to her


async def test_rotating_asks_for_a_recent_sign_in(tmp_path: Path) -> None:
    clock = Clock()
    async with site_under_test(tmp_path, clock=clock) as s, browser(s.site.app) as b:
        ann = await s.account(ANN)
        assert (await log_in(b, ANN)).status_code == 303
        first = secret_on((await b.get("/app/webhooks")).text)
        rotated = await b.post("/app/webhooks/rotate")
        assert rotated.status_code == 200 and 'id="secret-rotated"' in rotated.text
        second = secret_on(rotated.text)
        assert second != first
        clock.advance(minutes=11)
        page = await b.get("/app/webhooks")
        assert '<label for="rotate-password">' in page.text
        refused = await b.post("/app/webhooks/rotate")
        assert refused.status_code == 400 and secret_on(refused.text) == second
        wrong = await b.post("/app/webhooks/rotate", {"password": "not it"})
        assert wrong.status_code == 400 and secret_on(wrong.text) == second
        third = await b.post("/app/webhooks/rotate", {"password": PASSWORD})
        assert third.status_code == 200 and secret_on(third.text) not in (first, second)
        async with writing(s.url) as session:
            assert await webhooks.secret(session, ann.id, now=clock.now) == secret_on(third.text)


async def test_the_forms_need_the_csrf_token(tmp_path: Path) -> None:
    async with site_under_test(tmp_path, PRIVATE_OK) as s, browser(s.site.app) as b:
        await s.account(ANN)
        assert (await log_in(b, ANN)).status_code == 303
        kept = secret_on((await b.get("/app/webhooks")).text)
        forged = await b.post("/app/webhooks", {"url": "http://127.0.0.1:9/"}, csrf=False)
        assert forged.status_code == 403
        rotate = await b.post("/app/webhooks/rotate", csrf=False)
        assert rotate.status_code == 403
        page = await b.get("/app/webhooks")
        assert secret_on(page.text) == kept and 'value=""' in page.text
