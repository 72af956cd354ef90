"""Retention (MAILVET_RETENTION_DAYS): the uploaded list, work files and result of a job older
than the retention are deleted with its file name; its counts, cost and dates stay; a running
job and a recent one are left alone; drafts go by whole days; the purge is idempotent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from mailvet.adapters.db.models import JobRow
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.pipeline import object_keys
from mailvet.services.jobs import draft_key, purge_expired, purge_once
from tests.web.jobs_helpers import lists_app
from tests.web.test_jobs_flow import LIST, run_list

pytestmark = pytest.mark.pipeline


async def test_purge_deletes_old_files_and_keeps_the_counts(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", {"MAILVET_RETENTION_DAYS": "30"}) as lists:
        account = await lists.account("owner@example.org")
        browser = await lists.browser(account)
        old = (await run_list(browser, "old.csv", LIST, "text/csv")).rsplit("/", 1)[1]
        await browser.events(f"/app/jobs/{old}")
        recent = (await run_list(browser, "recent.csv", LIST, "text/csv")).rsplit("/", 1)[1]
        await browser.events(f"/app/jobs/{recent}")
        running = uuid.uuid4().hex
        await lists.deps.jobs.add(
            Job(id=running, file=FileInfo(filename="running.csv"), owner=account.id)
        )
        await lists.deps.jobs.set_status(running, JobStatus.FILE_ACCEPTED)
        await lists.storage.put_bytes(object_keys.in_progress_input(running), b"email\n")
        now = datetime.now(UTC)
        long_ago = now - timedelta(days=31)
        async with lists.web.database.session_maker() as session, session.begin():
            await session.execute(
                update(JobRow).where(JobRow.id.in_([old, running])).values(created_at=long_ago)
            )
        stale_draft = draft_key(now - timedelta(days=3), uuid.uuid4().hex)
        fresh_draft = draft_key(now, uuid.uuid4().hex)
        await lists.storage.put_bytes(stale_draft, b"email\n")
        await lists.storage.put_bytes(fresh_draft, b"email\n")
        assert await lists.storage.exists(object_keys.completed(old))

        purged = await purge_once(lists.web.database, lists.storage, now=now, retention_days=30)
        assert purged == 1
        for key in (object_keys.completed(old), object_keys.summary(old), stale_draft):
            assert not await lists.storage.exists(key), key
        for key in (
            object_keys.completed(recent),
            object_keys.in_progress_input(running),
            fresh_draft,
        ):
            assert await lists.storage.exists(key), key
        async with lists.web.database.session_maker() as session:
            rows = {row.id: row for row in (await session.execute(select(JobRow))).scalars()}
        assert rows[old].filename == "" and rows[old].layout == b""
        assert rows[old].counts is not None and rows[old].cost == 5 and rows[old].rows_total == 6
        assert rows[recent].filename == "recent.csv"
        assert rows[running].filename == "running.csv"
        async with lists.web.database.session_maker() as session, session.begin():
            again = await purge_expired(session, lists.storage, now=now, retention_days=30)
        assert again == 0
        # the dashboard still lists it, without a name or a download
        dashboard = (await browser.get("/app")).text
        assert "(deleted after the retention period)" in dashboard
        assert f'href="/app/jobs/{old}/download/all"' not in dashboard
        assert (await browser.get(f"/app/jobs/{old}/download/all")).status_code == 404
