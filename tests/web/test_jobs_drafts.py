"""Drafts (lists uploaded, not started yet): they belong to the account that uploaded them,
also in a browser where another account signs in without signing out first; "Start
validation" pressed twice at once makes one job."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.services import jobs as job_service
from tests.web.jobs_helpers import lists_app
from tests.web.test_jobs_flow import LIST

pytestmark = pytest.mark.pipeline


async def test_a_draft_does_not_follow_the_browser_into_another_account(tmp_path: Path) -> None:
    storage = MemoryStorage()
    async with lists_app(tmp_path / "data", pipeline=False, storage=storage) as lists:
        ann = await lists.account("ann@example.com")
        bob = await lists.account("bob@example.com")
        browser = await lists.browser(ann)
        draft = (await browser.upload("ann-contacts.csv", LIST)).headers["location"]
        assert (await browser.get(draft)).status_code == 200
        answer = await browser.post(f"/t/sign-in/{bob.id}")  # no sign-out between
        assert answer.status_code == 200
        assert (await browser.get(draft)).status_code == 404
        answer = await browser.post(f"{draft}/start", {"email_column": "2"})
        assert answer.status_code == 404
        draft_id = draft.rsplit("/", 1)[1]
        async with lists.web.database.session_maker() as session:
            assert await job_service.owned_job(session, bob.id, draft_id) is None
        # bob's own upload drops ann's draft from the session and from storage
        mine = (await browser.upload("bob.csv", LIST)).headers["location"]
        assert (await browser.get(mine)).status_code == 200
        stored = [key for key in storage.objects if key.startswith(job_service.DRAFTS)]
        assert stored == [job_service.draft_key(lists.web.clock(), mine.rsplit("/", 1)[1])]
        answer = await browser.post(f"/t/sign-in/{ann.id}")
        assert (await browser.get(draft)).status_code == 404  # gone for ann too
