"""MAILVET_RETENTION_DAYS reaches the web role's periodic task (web/site.py starts
services.jobs.run_retention with the setting): with 2 days, the site's own task, started with
the app, deletes the files of a list made 3 days ago and keeps those of one made yesterday;
the counts stay."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from mailvet.adapters.db.models import JobRow
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.pipeline import object_keys
from tests.web.account_helpers import writing
from tests.web.shell_helpers import HTTPS
from tests.web.site_helpers import site_under_test

pytestmark = pytest.mark.pipeline


async def test_the_site_purges_after_the_days_of_the_setting(tmp_path: Path) -> None:
    async with site_under_test(tmp_path, {"MAILVET_RETENTION_DAYS": "2"}) as s:
        owner = await s.account("ann.lee@example.com")
        now = datetime.now(UTC)
        ages = {"old": 3, "young": 1}
        ids = {name: uuid.uuid4().hex for name in ages}
        for name, job_id in ids.items():
            await s.deps.jobs.add(
                Job(id=job_id, file=FileInfo(filename=f"{name}.csv"), owner=owner.id)
            )
            await s.deps.jobs.set_status(job_id, JobStatus.ERROR_FILE, "unreadable")
            await s.storage.put_bytes(object_keys.uploaded(job_id), b"email\na@b.com\n")
            async with writing(s.url) as session:
                made = now - timedelta(days=ages[name])
                await session.execute(
                    update(JobRow).where(JobRow.id == job_id).values(created_at=made)
                )
        async with AsyncTestClient(s.site.app, base_url=HTTPS):  # the app's start starts the task
            assert "retention" in [task.get_name() for task in s.site.tasks]
            # the purge deletes the files, then blanks the row: wait for the row (the later)
            async with asyncio.timeout(20):
                while (await s.deps.jobs.get(ids["old"])).file.filename:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        assert object_keys.uploaded(ids["old"]) not in s.storage.objects
        assert object_keys.uploaded(ids["young"]) in s.storage.objects
        assert (await s.deps.jobs.get(ids["young"])).file.filename == "young.csv"
