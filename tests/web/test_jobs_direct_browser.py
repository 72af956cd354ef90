"""Issue 8 §3 in Debian's Chromium: with S3 storage the new-list form posts the dropped file
straight to S3 (moto), jobs.js having put the file's name in the form's metadata field, and
S3's redirect brings the browser back to the preview, which shows that name; the page's
policy lets the form post to S3 (no CSP violation), and nothing of the name runs."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailvet.adapters.storage.s3 import S3Storage
from mailvet.services import jobs as job_service
from tests.browser import NEEDS_CHROMIUM, watched_page
from tests.s3server import MotoS3
from tests.web.jobs_helpers import lists_app

pytestmark = [
    pytest.mark.e2e,
    NEEDS_CHROMIUM,
]

NAME = "Kontakte März <img src=x onerror=alert(1)>.csv"


@pytest.fixture
def s3() -> Iterator[MotoS3]:
    yield from MotoS3().serve()


async def test_a_dropped_list_goes_to_s3_and_its_name_comes_back(
    s3: MotoS3, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    storage = S3Storage(
        s3.endpoint, s3.access_key, s3.secret_key, f"mailvet-{uuid.uuid4().hex[:16]}"
    )
    await storage.ensure_bucket()
    try:
        async with (
            lists_app(tmp_path / "data", pipeline=False, storage=storage) as lists,
            async_playwright() as p,
            watched_page(p) as watched,
        ):
            page, problems, dialogs = watched.page, watched.problems, watched.dialogs
            account = await lists.account("owner@example.org")
            await watched.sign_in(lists.base_url, account.id)

            await page.goto(lists.base_url + "/app/jobs/new")
            assert await page.locator("form[data-dropzone]").get_attribute("action") == (
                f"{s3.url}/{storage.bucket}"
            )
            await page.evaluate(
                """(name) => {
                    const form = document.querySelector("form[data-dropzone]");
                    const data = new DataTransfer();
                    const rows = "email\\nann@example.com\\nbob@example.com\\n";
                    data.items.add(new File([rows], name));
                    form.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true}));
                }""",
                NAME,
            )
            named = page.locator("input[data-filename]")
            assert await named.input_value() != ""  # filled on the file field's change
            await page.get_by_role("button", name="Upload and preview").click()
            await page.wait_for_url(re.compile(r"/app/jobs/new/[0-9a-f]{32}$"))
            assert page.url.startswith(lists.base_url)  # back from S3 to this app
            await expect(page.locator("#cost")).to_have_text("2")
            await expect(page.locator("body")).to_contain_text(NAME)
            draft_id = page.url.rsplit("/", 1)[1]
            key = job_service.draft_key(lists.web.clock(), draft_id)
            assert (await storage.stat(key)).size == len(
                b"email\nann@example.com\nbob@example.com\n"
            )
            assert [m for m in problems if "Content Security Policy" in m] == []
            assert dialogs == []
    finally:
        storage.close()
