"""Live progress: a progress write reaches an open job page's event stream well within a
second (the poller reads the database every 0.3 s), for several pages of several jobs at
once, and an ended stream leaves nothing watched."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from mailvet.domain.job import FileInfo, Job, JobStatus
from tests.waiting import until
from tests.web.jobs_helpers import Browser, lists_app

pytestmark = pytest.mark.pipeline


async def follow(browser: Browser, job_id: str, seen: list[tuple[float, str]]) -> None:
    async with browser.client.stream("GET", f"/app/jobs/{job_id}/events") as stream:
        assert stream.status_code == 200
        async for line in stream.aiter_lines():
            if line.startswith("data:") and "rows-done" in line:
                seen.append((time.monotonic(), line))
            if line == "event: done":
                return


async def test_a_progress_write_reaches_the_page_within_a_second(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        account = await lists.account("owner@example.org")
        browsers = [await lists.browser(account) for _ in range(3)]
        jobs = lists.deps.jobs
        ids = [uuid.uuid4().hex for _ in range(2)]
        for job_id in ids:
            await jobs.add(Job(id=job_id, file=FileInfo(filename="a.csv"), owner=account.id))
            await jobs.set_status(job_id, JobStatus.FILE_ACCEPTED)
            await jobs.set_counts(job_id, rows_total=30, chunks_total=3, layout=b"")
            await jobs.set_status(job_id, JobStatus.FILE_QUEUED)
            await jobs.set_status(job_id, JobStatus.IN_PROGRESS)
        seen: dict[tuple[int, str], list[tuple[float, str]]] = {}
        followers = []
        for n, browser in enumerate(browsers):
            for job_id in ids:
                seen[n, job_id] = []
                followers.append(asyncio.create_task(follow(browser, job_id, seen[n, job_id])))
        await until(lambda: _all_have(seen, 1))  # each stream starts with the state now
        for chunk in range(3):
            written = time.monotonic()
            for job_id in ids:
                await jobs.record_chunk(job_id, chunk, 10)
            wanted = chunk + 2
            await until(lambda: _all_have(seen, wanted))  # noqa: B023 (awaited at once)
            for lines in seen.values():
                at, line = lines[chunk + 1]
                assert f'<span id="rows-done">{10 * (chunk + 1)}</span>' in line
                assert at - written < 1.0, at - written
        for job_id in ids:
            await jobs.set_status(job_id, JobStatus.COMPLETED)
        await asyncio.wait_for(asyncio.gather(*followers), 5)  # `done` ends every stream


def _all_have(seen: dict[tuple[int, str], list[tuple[float, str]]], count: int) -> bool:
    return all(len(lines) >= count for lines in seen.values())
