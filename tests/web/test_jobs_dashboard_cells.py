"""The dashboard's row of a known job: its file, date (a <time> with the ISO instant and the
minute shown), rows, cost, status and progress (<progress> and the percent) cells, in the
columns the header names; a completed job shows 100% and its download link, a running one
never 100% before it is completed."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from mailvet.adapters.db.models import JobRow
from mailvet.domain.job import FileInfo, Job, JobStatus
from tests.web.jobs_helpers import ListsApp, lists_app

pytestmark = pytest.mark.pipeline

ROW = re.compile(r"<tr>\s*(<td>.*?)</tr>", re.S)
CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
HEADER = re.compile(r'<th scope="col">([^<]+)</th>')


async def a_job(lists: ListsApp, owner: str, name: str, status: JobStatus, **values: object) -> str:
    job_id = uuid.uuid4().hex
    await lists.deps.jobs.add(Job(id=job_id, file=FileInfo(filename=name), owner=owner))
    async with lists.web.database.session_maker() as session, session.begin():
        await session.execute(
            update(JobRow).where(JobRow.id == job_id).values(status=status.value, **values)
        )
    return job_id


def rows_of(page: str) -> dict[str, dict[str, str]]:
    """{file name: {column header: cell html}} of the jobs table."""
    headers = HEADER.findall(page.split('<table class="jobs">', 1)[1].split("</thead>", 1)[0])
    table: dict[str, dict[str, str]] = {}
    for found in ROW.finditer(page):
        cells = [cell.strip() for cell in CELL.findall(found.group(1))]
        assert len(cells) == len(headers), cells
        name = re.sub(r"<[^>]+>", "", cells[0])
        table[name] = dict(zip(headers, cells, strict=True))
    return table


async def test_each_job_shows_its_date_cost_and_progress(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        account = await lists.account("owner@example.org", credits=500)
        running = await a_job(
            lists,
            account.id,
            "running.csv",
            JobStatus.IN_PROGRESS,
            created_at=datetime(2026, 11, 5, 14, 7, 9, tzinfo=UTC),
            rows_total=200,
            rows_done=50,
            cost=37,
        )
        done = await a_job(
            lists,
            account.id,
            "done.csv",
            JobStatus.COMPLETED,
            created_at=datetime(2026, 11, 4, 9, 30, tzinfo=UTC),
            rows_total=12,
            rows_done=12,
            cost=11,
        )
        browser = await lists.browser(account)
        page = (await browser.get("/app")).text
        table = rows_of(page)
        assert list(table) == ["running.csv", "done.csv"]  # newest first

        row = table["running.csv"]
        assert f'href="/app/jobs/{running}"' in row["File"]
        assert row["Date"] == '<time datetime="2026-11-05T14:07:09+00:00">2026-11-05 14:07</time>'
        assert row["Rows"] == "200"
        assert row["Cost"] == "37"
        assert row["Status"] == "Processing"
        assert '<progress max="100" value="25"' in row["Progress"]
        assert row["Progress"].endswith("25%")
        assert row["Download"] == ""

        row = table["done.csv"]
        assert row["Date"] == '<time datetime="2026-11-04T09:30:00+00:00">2026-11-04 09:30</time>'
        assert row["Rows"] == "12" and row["Cost"] == "11"
        assert row["Status"] == "Completed"
        assert '<progress max="100" value="100"' in row["Progress"]
        assert f'href="/app/jobs/{done}/download/all"' in row["Download"]
