"""The credits page (/app/billing, web/billing/pages.py) of the site as `mailvet run web`
builds it: the balance, the ledger's entries in words, newest first and a page at a time,
only the signed-in account's, every text escaped; the dashboard links to it."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from mailvet.services import credits
from mailvet.web.billing.pages import ENTRIES_PER_PAGE
from tests.web.account_helpers import writing
from tests.web.auth_helpers import Browser, log_in
from tests.web.shell_helpers import HTTPS
from tests.web.site_helpers import SiteUnderTest, site_under_test

pytestmark = pytest.mark.pipeline

ANN = "ann.lee@example.com"
ROW = re.compile(
    r"<tr>\s*<td><time[^>]*>[^<]*</time></td>\s*<td>([^<]*)</td>\s*"
    r'<td class="amount">([^<]*)</td>'
)
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


async def _signed_in(s: SiteUnderTest, client: AsyncTestClient, email: str) -> Browser:  # type: ignore[type-arg]
    b = Browser(client)
    assert (await log_in(b, email)).status_code == 303
    return b


async def test_the_page_shows_the_balance_and_the_entries_in_words(tmp_path: Path) -> None:
    async with (
        site_under_test(tmp_path) as s,
        AsyncTestClient(s.site.app, base_url=HTTPS) as client,
    ):
        ann = await s.account(ANN, credits=100)
        other = await s.account("bob@example.com", credits=9)
        job_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        async with writing(s.url) as session:
            await credits.adjust(session, ann.id, 5, actor=other.id, reason=HOSTILE, now=now)
            await credits.reserve_for_job(session, ann.id, job_id, 3, now + timedelta(seconds=1))
            await credits.adjust(
                session, other.id, 1, actor="cli", reason="OTHER-ACCOUNT-ONLY", now=now
            )
        b = await _signed_in(s, client, ANN)
        page = await b.get("/app/billing")
        assert page.status_code == 200, page.text
        assert '<strong id="billing-balance">102</strong>' in page.text
        rows = ROW.findall(page.text)
        assert rows[:2] == [
            ("A list started (its cost held)", "-3"),
            ("Adjusted by an administrator", "+5"),
        ]
        assert len(rows) == 3  # and the account's first credits
        assert f'href="/app/jobs/{job_id}"' in page.text
        assert HOSTILE not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert other.id not in page.text  # who adjusted is not shown to the customer
        assert "OTHER-ACCOUNT-ONLY" not in page.text
        assert "no-store" in page.headers["cache-control"]
        dashboard = await b.get("/app")
        assert 'href="/app/billing"' in dashboard.text
        assert 'href="/app/api-keys"' in dashboard.text  # issue 8: links to API keys, billing
        assert (await b.get("/app/api-keys")).status_code == 200


async def test_the_history_is_paged(tmp_path: Path) -> None:
    async with (
        site_under_test(tmp_path) as s,
        AsyncTestClient(s.site.app, base_url=HTTPS) as client,
    ):
        ann = await s.account(ANN, credits=0)
        start = datetime.now(UTC)
        extra = ENTRIES_PER_PAGE + 4
        async with writing(s.url) as session:
            for n in range(extra):
                at = start + timedelta(seconds=n)
                await credits.adjust(session, ann.id, n + 1, actor="cli", reason="r", now=at)
            entries = (await credits.history(session, ann.id, limit=100)).total
        b = await _signed_in(s, client, ANN)
        first = await b.get("/app/billing")
        second = await b.get("/app/billing?page=2")
        on_first, on_second = ROW.findall(first.text), ROW.findall(second.text)
        assert len(on_first) == ENTRIES_PER_PAGE
        assert on_first[0] == ("Adjusted by an administrator", f"+{extra}")
        assert len(on_first) + len(on_second) == entries >= extra
        assert 'href="/app/billing?page=2" rel="next"' in first.text
        assert 'rel="next"' not in second.text
        assert 'href="/app/billing?page=1" rel="prev"' in second.text
        for odd in ("0", "-3"):
            assert ROW.findall((await b.get(f"/app/billing?page={odd}")).text) == on_first
        assert (await b.get("/app/billing?page=abc")).status_code == 400
        assert ROW.findall((await b.get("/app/billing?page=99")).text) == []


async def test_signed_out_and_free_installations(tmp_path: Path) -> None:
    async with (
        site_under_test(tmp_path, {"MAILVET_CREDITS": "off"}) as s,
        AsyncTestClient(s.site.app, base_url=HTTPS) as client,
    ):
        anonymous = await Browser(client).get("/app/billing")
        assert anonymous.status_code in (302, 303), anonymous.text
        assert anonymous.headers["location"].startswith("/login")
        await s.account(ANN, credits=0)
        b = await _signed_in(s, client, ANN)
        page = await b.get("/app/billing")
        assert "Validation is free on this installation" in page.text
        assert 'id="billing-balance"' not in page.text
