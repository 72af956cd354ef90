"""The dashboard: the balance, the jobs table paginated newest first with the status labels,
and the single-address check (one credit, refunded for an unknown verdict; an unconfirmed
account or an empty balance is refused)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from mailvet.adapters.db.models import JobRow
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.services import credits
from mailvet.services.jobs import PAGE_SIZE
from tests.web.jobs_helpers import lists_app

pytestmark = pytest.mark.pipeline


async def test_the_jobs_table_is_paginated_newest_first(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        account = await lists.account("owner@example.org", credits=7)
        other = await lists.account("other@example.org")
        start = datetime(2026, 11, 1, tzinfo=UTC)
        ids = []
        for n in range(PAGE_SIZE + 3):
            job_id = uuid.uuid4().hex
            ids.append(job_id)
            await lists.deps.jobs.add(
                Job(id=job_id, file=FileInfo(filename=f"list-{n:02d}.csv"), owner=account.id)
            )
        await lists.deps.jobs.add(
            Job(id=uuid.uuid4().hex, file=FileInfo(filename="theirs.csv"), owner=other.id)
        )
        async with lists.web.database.session_maker() as session, session.begin():
            for n, job_id in enumerate(ids):
                await session.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id)
                    .values(created_at=start + timedelta(hours=n))
                )
        await lists.deps.jobs.set_status(ids[-1], JobStatus.ERROR_FILE, "no email column")
        browser = await lists.browser(account)
        first = (await browser.get("/app")).text
        assert '<strong id="balance">7</strong>' in first
        names = re.findall(r">(list-\d\d\.csv)</a>", first)
        assert names == [f"list-{n:02d}.csv" for n in range(PAGE_SIZE + 2, 2, -1)]
        assert "Page 1 of 2 (23 jobs)" in first and 'href="/app?page=2"' in first
        assert "theirs.csv" not in first
        assert first.count('<td class="status">Pending Start</td>') == PAGE_SIZE - 1
        assert first.count('<td class="status">Failed</td>') == 1
        second = (await browser.get("/app", params={"page": "2"})).text
        assert re.findall(r">(list-\d\d\.csv)</a>", second) == [
            "list-02.csv",
            "list-01.csv",
            "list-00.csv",
        ]
        assert 'href="/app?page=1"' in second and "?page=3" not in second


async def test_a_single_check_costs_one_credit(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        account = await lists.account("owner@example.org", credits=2)
        browser = await lists.browser(account)
        answer = await browser.post("/app/check", {"email": "ann@example.com"})
        assert answer.status_code == 200
        assert '<dd class="status">deliverable</dd>' in answer.text
        assert "1 credit used." in answer.text
        fragment = await browser.post(
            "/app/check", {"email": "later@example.com"}, headers={"hx-request": "true"}
        )
        assert fragment.text.startswith('<div id="check-result"')
        assert '<dd class="status">unknown</dd>' in fragment.text
        assert "1 credit used." not in fragment.text  # refunded
        async with lists.web.database.session_maker() as session:
            assert (await credits.balance(session, account.id)).balance == 1
        await browser.post("/app/check", {"email": "gone@example.com"})
        refused = await browser.post("/app/check", {"email": "bob@example.com"})
        assert refused.status_code == 409
        assert "A check costs 1 credit and your balance is 0." in refused.text
        empty = await browser.post("/app/check", {"email": "  "})
        assert empty.status_code == 400
        xss = await browser.post("/app/check", {"email": '"><script>alert(1)</script>'})
        assert "<script>alert(1)" not in xss.text


async def test_an_unconfirmed_account_cannot_check(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        account = await lists.account("new@example.org", confirmed=False)
        browser = await lists.browser(account)
        answer = await browser.post("/app/check", {"email": "ann@example.com"})
        assert answer.status_code == 403
        assert "Confirm your email address before you check" in answer.text
        async with lists.web.database.session_maker() as session:
            assert (await credits.balance(session, account.id)).balance == 100


async def test_with_credits_off_the_check_is_free(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", {"MAILVET_CREDITS": "off"}, pipeline=False) as lists:
        account = await lists.account("owner@example.org", credits=0)
        browser = await lists.browser(account)
        answer = await browser.post("/app/check", {"email": "ann@example.com"})
        assert answer.status_code == 200 and "deliverable" in answer.text
        assert "Validation is free on this installation." in answer.text
