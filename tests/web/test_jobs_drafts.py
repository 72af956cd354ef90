"""Drafts (lists uploaded, not started yet): they belong to the account that uploaded them,
also in a browser where another account signs in without signing out first; "Start
validation" pressed twice at once makes one job."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailvet.adapters.db.models import JobRow
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.pipeline import object_keys
from mailvet.services import jobs as job_service
from tests.waiting import until
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


class HeldDrafts(MemoryStorage):
    """Holds every read or move of a draft until two have arrived or `release` is set (the
    old start read the draft in both requests; a start that claims first reads it once)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.arrived = 0

    async def _hold(self, key: str) -> None:
        if key.startswith(job_service.DRAFTS):
            self.arrived += 1
            await until(lambda: self.arrived >= 2 or self.release.is_set())

    async def get_file(self, key: str, path: Path) -> None:
        await self._hold(key)
        await super().get_file(key, path)

    async def move(self, src: str, dst: str) -> None:
        await self._hold(src)
        await super().move(src, dst)


async def test_start_pressed_twice_at_once_makes_one_job(tmp_path: Path) -> None:
    storage = HeldDrafts()
    async with lists_app(tmp_path / "data", pipeline=False, storage=storage) as lists:
        browser = await lists.browser(await lists.account("ann@example.com"))
        draft = (await browser.upload("contacts.csv", LIST)).headers["location"]
        draft_id = draft.rsplit("/", 1)[1]
        form = {"email_column": "2"}
        presses = [asyncio.create_task(browser.post(f"{draft}/start", form)) for _ in range(2)]
        done, _ = await asyncio.wait(presses, return_when=asyncio.FIRST_COMPLETED)
        storage.release.set()
        answers = [await press for press in presses]
        assert [answer.status_code for answer in answers] == [303, 303], answers[0].text
        assert {answer.headers["location"] for answer in answers} == {f"/app/jobs/{draft_id}"}
        assert storage.arrived == 1  # the draft was read (moved) once
        async with lists.web.database.session_maker() as session:
            count = await session.scalar(select(func.count()).select_from(JobRow))
        assert count == 1
        assert sorted(storage.objects) == [object_keys.uploaded(draft_id)]
        # pressed again later, from the page still open: the job's page, not an error
        again = await browser.post(f"{draft}/start", form)
        assert again.status_code == 303
        assert again.headers["location"] == f"/app/jobs/{draft_id}"
        assert (await browser.get(again.headers["location"])).status_code == 200


async def test_a_start_that_fails_after_its_claim_can_be_pressed_again(tmp_path: Path) -> None:
    class Broken(MemoryStorage):
        fail = True

        async def move(self, src: str, dst: str) -> None:
            if self.fail:
                raise OSError("storage down")
            await super().move(src, dst)

    storage = Broken()
    async with lists_app(tmp_path / "data", pipeline=False, storage=storage) as lists:
        browser = await lists.browser(await lists.account("ann@example.com"))
        draft = (await browser.upload("contacts.csv", LIST)).headers["location"]
        failed = await browser.post(f"{draft}/start", {"email_column": "2"})
        assert failed.status_code == 500
        async with lists.web.database.session_maker() as session:
            assert await session.scalar(select(func.count()).select_from(JobRow)) == 0
        storage.fail = False
        answer = await browser.post(f"{draft}/start", {"email_column": "2"})
        assert answer.status_code == 303
        assert (await browser.get(answer.headers["location"])).status_code == 200
