"""The lists area in Debian's Chromium: a file dropped on the upload form lands in its File
field (web/static/js/jobs.js), the preview and "Start validation" lead to the job page,
whose htmx SSE stream swaps in the progress until Completed with the chart and downloads,
and closes; no CSP violation, no script from a hostile file name or cell."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser import NEEDS_CHROMIUM, watched_page
from tests.fakes import FakeProber
from tests.web.jobs_helpers import answer, lists_app

pytestmark = [
    pytest.mark.e2e,
    NEEDS_CHROMIUM,
]

HOSTILE = b'email,note\nann@example.com,"<img src=x onerror=alert(1)>"\ngone@example.com,x\n'


async def test_upload_start_and_watch_the_job_complete(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    # a slow mail server: the page sees the job running before it completes
    prober = FakeProber(answer=answer, delay=0.4)
    listing = tmp_path / '"><img src=x onerror=alert(3)>.csv'
    listing.write_bytes(HOSTILE)
    async with lists_app(tmp_path / "data", prober=prober) as lists, async_playwright() as p:
        account = await lists.account("owner@example.org")
        async with watched_page(p) as watched:
            page, problems, dialogs = watched.page, watched.problems, watched.dialogs
            await watched.sign_in(lists.base_url, account.id)

            await page.goto(lists.base_url + "/app/jobs/new")
            dropped = await page.evaluate(
                """() => {
                    const form = document.querySelector("form[data-dropzone]");
                    const data = new DataTransfer();
                    data.items.add(new File(["email\\nx@example.com\\n"], "dropped.csv"));
                    form.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true}));
                    return document.getElementById("list-file").files[0].name;
                }"""
            )
            assert dropped == "dropped.csv"
            await page.get_by_label("File").set_input_files(str(listing))
            await page.get_by_role("button", name="Upload and preview").click()
            await expect(page.locator("#cost")).to_have_text("2")
            await expect(page.get_by_label("Email column")).to_have_value("1")
            await page.get_by_role("button", name="Start validation").click()
            await page.wait_for_url(re.compile(r"/app/jobs/[0-9a-f]{32}$"))
            # rendered while running: the live part follows the stream (it stays in the page)
            assert await page.locator("#live[sse-connect]").count() == 1
            await expect(page.locator("#job-status")).to_have_text("Completed", timeout=20_000)
            await expect(page.locator("#rows-done")).to_have_text("2")
            await expect(page.locator("figure.chart svg rect")).to_have_count(4)
            await expect(
                page.get_by_role("link", name="Deliverable only", exact=True)
            ).to_be_visible()
            assert dialogs == []
            assert await page.locator("img[src=x]").count() == 0
            assert [m for m in problems if "Content Security Policy" in m] == []
            async with page.expect_download() as waiting:
                await page.get_by_role("link", name="Deliverable only", exact=True).click()
            download = await waiting.value
            saved = tmp_path / "deliverable.csv"
            await download.save_as(saved)
            assert saved.read_bytes().splitlines()[1].startswith(b"ann@example.com,")
            assert len(saved.read_bytes().splitlines()) == 2
