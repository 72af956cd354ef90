"""Only the owner sees a job: its page, its events, its downloads, its signed file links, its
deletion and its draft are a 404 for another account, as for ids that do not exist (guessed);
the anonymous visitor is sent to sign in. Every user-supplied string on these pages (file
name, preview cells, error text) is escaped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.pipeline import object_keys
from mailvet.web.jobs.labels import status_label
from tests.web.jobs_helpers import lists_app
from tests.web.test_jobs_flow import LIST, download, run_list

pytestmark = pytest.mark.pipeline

XSS_NAME = '"><img src=x onerror=alert(1)>.csv'
XSS_LIST = (
    b"email,comment\n"
    b'ann@example.com,<script>alert("cell")</script>\n'
    b'bob@example.com,"\\"><img src=x onerror=alert(2)>"\n'
)


async def test_another_account_gets_404_for_everything_of_a_job(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data") as lists:
        owner = await lists.browser(await lists.account("owner@example.org"))
        other = await lists.browser(await lists.account("other@example.org"))
        job = await run_list(owner, "contacts.csv", LIST, "text/csv")
        assert (await owner.events(job))[-1][0] == "done"
        signed = (await owner.get(f"{job}/download/deliverable")).headers["location"]
        assert (await owner.get(signed)).status_code == 200
        draft = (await owner.upload("draft.csv", LIST)).headers["location"]
        guessed = f"/app/jobs/{uuid.uuid4().hex}"
        for path in (job, guessed, "/app/jobs/../../etc", "/app/jobs/" + "f" * 64):
            for suffix in ("", "/events", "/download/all", "/download/deliverable"):
                answer = await other.get(path + suffix)
                assert answer.status_code == 404, (path, suffix, answer.status_code)
                assert "contacts.csv" not in answer.text
        assert (await other.get(signed)).status_code == 404  # the owner's own valid link
        assert (await other.get(draft)).status_code == 404
        assert (await other.post(f"{draft}/start", {"email_column": "2"})).status_code == 404
        assert (await other.post(f"{job}/delete")).status_code == 404
        assert "contacts.csv" not in (await other.get("/app")).text
        # the owner still has it all
        assert (await owner.get(job)).status_code == 200
        assert await download(owner, job, "all")

        anonymous = await lists.browser()
        for suffix in ("", "/events", "/download/all"):
            answer = await anonymous.get(job + suffix)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/login?next=")
        json = await anonymous.get(job, headers={"accept": "application/json"})
        assert json.status_code == 401


async def test_a_signed_link_expires_and_is_bound_to_its_segment(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", {"MAILVET_STORAGE_LINK_SECONDS": "60"}) as lists:
        owner = await lists.browser(await lists.account("owner@example.org"))
        job = await run_list(owner, "contacts.csv", LIST, "text/csv")
        await owner.events(job)
        signed = (await owner.get(f"{job}/download/deliverable")).headers["location"]
        swapped = signed.replace("/file/deliverable", "/file/undeliverable")
        answer = await owner.get(swapped)
        assert answer.status_code == 307  # not this segment's signature: a fresh link first
        assert answer.headers["location"] == f"{job}/download/undeliverable"
        past = signed.split("expires=")[0] + "expires=1000&sig=" + signed.split("sig=")[1]
        assert (await owner.get(past)).status_code == 307  # another expiry: not signed
        assert (await owner.get(signed)).status_code == 200
        lists.web.clock = lambda: datetime.now(UTC) + timedelta(seconds=120)
        answer = await owner.get(signed)
        assert answer.status_code == 307  # expired: through a fresh link
        assert answer.headers["location"] == f"{job}/download/deliverable"


async def test_file_names_cells_and_errors_are_escaped(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data") as lists:
        browser = await lists.browser(await lists.account("owner@example.org"))
        uploaded = await browser.upload(XSS_NAME, XSS_LIST)
        preview = (await browser.get(uploaded.headers["location"])).text
        assert "<script>alert" not in preview and "<img src=x" not in preview
        assert "&lt;script&gt;alert(&#34;cell&#34;)&lt;/script&gt;" in preview
        assert "&lt;img src=x onerror=alert(1)&gt;.csv" in preview
        bad_column = await browser.get(
            uploaded.headers["location"], params={"column": "<script>x</script>"}
        )
        assert bad_column.status_code == 422
        assert "<script>x" not in bad_column.text and "&lt;script&gt;x" in bad_column.text
        job = await run_list(browser, XSS_NAME, XSS_LIST, "text/csv")
        final = (await browser.events(job))[-2][1]
        assert "<img src=x" not in final and "<script>alert" not in final
        for page in ((await browser.get(job)).text, (await browser.get("/app")).text):
            assert "<img src=x" not in page and "<script>alert" not in page
            assert "onerror=alert(1)&gt;.csv" in page
        link = (await browser.get(f"{job}/download/all")).headers["location"]
        disposition = (await browser.get(link)).headers["content-disposition"]
        assert disposition.startswith('attachment; filename="')
        assert "\n" not in disposition


async def test_delete_this_job_now_removes_its_files_and_row(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data") as lists:
        browser = await lists.browser(await lists.account("owner@example.org"))
        job = await run_list(browser, "contacts.csv", LIST, "text/csv")
        await browser.events(job)
        job_id = job.rsplit("/", 1)[1]
        assert await lists.storage.exists(object_keys.completed(job_id))
        answer = await browser.post(f"{job}/delete")
        assert answer.status_code == 303 and answer.headers["location"] == "/app"
        assert "The job and its files are deleted." in (await browser.get("/app")).text
        assert (await browser.get(job)).status_code == 404
        assert not await lists.storage.exists(object_keys.completed(job_id))
        assert not await lists.storage.exists(object_keys.summary(job_id))


@pytest.mark.parametrize("status", [JobStatus.PENDING_START, JobStatus.FILE_ACCEPTED])
async def test_a_running_job_is_not_deleted(tmp_path: Path, status: JobStatus) -> None:
    """Also while it starts (pending_start): intake may accept it at any moment and reserve
    its credit, which a deleted job would never settle."""
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        account = await lists.account("owner@example.org")
        browser = await lists.browser(account)
        job_id = uuid.uuid4().hex
        await lists.deps.jobs.add(Job(id=job_id, file=FileInfo(filename="a.csv"), owner=account.id))
        if status is not JobStatus.PENDING_START:
            await lists.deps.jobs.set_status(job_id, status)
        answer = await browser.post(f"/app/jobs/{job_id}/delete")
        assert answer.status_code == 303 and answer.headers["location"] == f"/app/jobs/{job_id}"
        page = (await browser.get(f"/app/jobs/{job_id}")).text
        assert "still starting or running" in page and "sse-connect" in page
        assert status_label(status) in page
        assert (await lists.deps.jobs.get(job_id)).status is status  # not deleted
