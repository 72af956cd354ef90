"""The SaaS (build_site, what `mailvet run web` serves) has no anonymous job API: the old
/api/jobs routes answer 404 and submit nothing, for a stranger and for a signed-in account
alike, while the app without accounts (create_app without a web context, the pipeline
tests' app) still serves them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from mailvet.domain.job import FileInfo, Job
from mailvet.web.app import create_app
from tests.web.auth_helpers import Browser, log_in
from tests.web.shell_helpers import HTTPS
from tests.web.site_helpers import site_under_test

pytestmark = pytest.mark.pipeline

LIST = ("list.csv", b"email\nann@example.org\n", "text/csv")
GONE = {404, 401}


async def test_the_saas_answers_404_on_the_anonymous_job_api(tmp_path: Path) -> None:
    async with site_under_test(tmp_path) as s:
        ann = await s.account("ann.lee@example.com")
        theirs = uuid.uuid4().hex
        anonymous = uuid.uuid4().hex
        await s.deps.jobs.add(Job(id=theirs, file=FileInfo(filename="ann.csv"), owner=ann.id))
        await s.deps.jobs.add(Job(id=anonymous, file=FileInfo(filename="anon.csv")))
        async with AsyncTestClient(s.site.app, base_url=HTTPS) as client:
            stranger = Browser(client)
            signed_in = stranger.fresh()
            assert (await log_in(signed_in, "ann.lee@example.com")).status_code == 303
            for b in (stranger, signed_in):
                for job_id in (theirs, anonymous):
                    for tail in ("", "/result", "/summary"):
                        answer = await b.request("GET", f"/api/jobs/{job_id}{tail}")
                        assert answer.status_code in GONE, (job_id, tail, answer.status_code)
                        assert "anon.csv" not in answer.text and "ann.csv" not in answer.text
                for path in ("/api/jobs", "/api/jobs/"):
                    posted = await b.request("POST", path, files={"file": LIST})
                    assert posted.status_code in GONE, (path, posted.status_code)
        assert sorted(job.id for job in await s.deps.jobs.list_jobs(10)) == sorted(
            [theirs, anonymous]
        )


async def test_the_app_without_accounts_still_serves_it(tmp_path: Path) -> None:
    """The contrast that makes the 404s above mean something: the same requests reach the
    API in the app without a web context."""
    async with site_under_test(tmp_path) as s:
        job_id = uuid.uuid4().hex
        await s.deps.jobs.add(Job(id=job_id, file=FileInfo(filename="anon.csv")))
        async with AsyncTestClient(create_app(s.deps), base_url=HTTPS) as client:
            assert (await client.get(f"/api/jobs/{job_id}")).status_code == 200
            posted = await client.post("/api/jobs", files={"file": LIST})
            assert posted.status_code == 201, posted.text
        assert len(await s.deps.jobs.list_jobs(10)) == 2
