"""MAILVET_CREDITS=off through the web: an account with a balance of 0 uploads a list, starts
it, sees it complete, and checks one address; the ledger gains no entry for any of it. With
credits on, the same account is refused (the setting is what lets it through)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.services import credits
from tests.web.jobs_helpers import ListsApp, lists_app

pytestmark = pytest.mark.pipeline

LIST = b"email\nann@example.org\nbob@example.org\ngone@example.org\n"


async def entries_of(lists: ListsApp, account_id: str) -> list[tuple[str, int]]:
    async with lists.web.database.session_maker() as session:
        rows = await session.execute(
            select(LedgerEntryRow.kind, LedgerEntryRow.amount)
            .where(LedgerEntryRow.account_id == account_id)
            .order_by(LedgerEntryRow.seq)
        )
        return [(kind, amount) for kind, amount in rows]


async def test_with_credits_off_an_empty_balance_runs_a_list_and_a_check_free(
    tmp_path: Path,
) -> None:
    async with lists_app(tmp_path / "data", {"MAILVET_CREDITS": "off"}) as lists:
        account = await lists.account("owner@example.org", credits=0)
        before = await entries_of(lists, account.id)
        browser = await lists.browser(account)
        uploaded = await browser.upload("free.csv", LIST)
        assert uploaded.status_code == 303, uploaded.text
        preview = await browser.get(uploaded.headers["location"])
        assert preview.status_code == 200 and 'id="shortfall"' not in preview.text
        started = await browser.start(uploaded.headers["location"])
        assert started.status_code == 303, started.text
        job = started.headers["location"]
        assert job.startswith("/app/jobs/") and "/new/" not in job
        events = await browser.events(job)
        assert '<strong id="job-status">Completed</strong>' in events[-2][1]

        checked = await browser.post("/app/check", {"email": "ann@example.com"})
        assert checked.status_code == 200 and "deliverable" in checked.text

        assert await entries_of(lists, account.id) == before  # nothing charged or held
        async with lists.web.database.session_maker() as session:
            assert (await credits.balance(session, account.id)).balance == 0


async def test_with_credits_on_the_same_empty_balance_is_refused(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        account = await lists.account("owner@example.org", credits=0)
        browser = await lists.browser(account)
        uploaded = await browser.upload("paid.csv", LIST)
        preview = await browser.get(uploaded.headers["location"])
        assert 'id="shortfall"' in preview.text
        checked = await browser.post("/app/check", {"email": "ann@example.com"})
        assert "deliverable" not in checked.text
