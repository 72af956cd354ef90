"""Issue 8 §6, second bullet: the sign-in and upload flow in Debian's Chromium against the
distributed stack: the five back-end roles and two `mailvet run web` processes (the same
MAILVET_SECRET_KEY) as separate processes on PostgreSQL, RabbitMQ and moto S3, probing a
local mail world (tests/cluster/web_stack.py: the stack the replica tests use too).

The account is made as `mailvet users create --confirmed --credits N` makes it; it signs in on
web 1, and the browser's cookie (cookies are per host, not per port) signs it in on web 2,
whose dashboard shows the balance; the list is uploaded, previewed and started on web 2;
its job page is open on both processes, and each one's live progress reaches 100% and
Completed; the whole result (a pre-signed link to S3) and the deliverable segment (a link
signed by the web process) are downloaded and compared with the list; another account
gets 404 for the job on both. No dialog opens, no page error or CSP report, and the pages
ask no host but the two web processes and the object storage.

Screenshots of the pages go to tests/e2e/screenshots/distributed-*.png.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    FilePayload,
    Page,
    Request,
    Route,
    async_playwright,
    expect,
)

from mailvet.domain.verdict import RESULT_COLUMNS
from tests.browser import ARGS, CHROMIUM, NEEDS_CHROMIUM
from tests.cluster.web_stack import (
    ACCOUNTS,
    CREDITS,
    DOMAIN,
    PASSWORD,
    WebStack,
    shared_web_stack,
)
from tests.e2e.harness import SCREENSHOTS
from tests.e2e.test_saas_browser import download, list_csv, result_rows, sign_in

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio(loop_scope="module"),
    NEEDS_CHROMIUM,
    pytest.mark.timeout(300),
]

OWNER, OTHER = ACCOUNTS[1], ACCOUNTS[2]
LIST_ROWS = [
    ("email", "name"),
    (f"ann@{DOMAIN}", "Ann"),
    (f"gone@{DOMAIN}", "Gone"),
    (f"bob@{DOMAIN}", "Bob"),
    (f"ann@{DOMAIN.upper()}", "Ann again"),  # the same address
    ("not an address", "Nobody"),
    (f"cy@{DOMAIN}", "Cy"),
]
EXPECTED = ["deliverable", "undeliverable", "deliverable"] * 2  # the statuses of the rows
COST = 4  # ann (twice), gone, bob, cy: the distinct addresses of valid syntax


@pytest.fixture(scope="module")
def web_stack(request: pytest.FixtureRequest) -> WebStack:
    return shared_web_stack(request)


@dataclass
class Watched:
    """A browser context's page and what it did that it should not have."""

    page: Page
    dialogs: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)  # hosts asked besides the allowed ones
    errors: list[str] = field(default_factory=list)  # page errors and CSP reports


@dataclass
class Chromium:
    browser: Browser
    stack: WebStack
    contexts: list[BrowserContext] = field(default_factory=list)

    async def context(self) -> tuple[BrowserContext, Watched]:
        """A fresh context (no cookies) whose relative URLs go to web 1, and its first page;
        requests to any host but the two web processes and S3 are recorded and aborted."""
        context = await self.browser.new_context(
            base_url=self.stack.urls[0],
            accept_downloads=True,
            viewport={"width": 1100, "height": 900},
        )
        self.contexts.append(context)
        allowed = {urlsplit(url).netloc for url in self.stack.urls} | {self.stack.s3_host}
        page = await context.new_page()
        watched = Watched(page)

        async def route(route: Route, request: Request) -> None:
            target = urlsplit(request.url)
            if target.scheme in ("data", "blob") or target.netloc in allowed:
                await route.continue_()
            else:
                watched.outside.append(target.netloc)
                await route.abort()

        async def dialog(opened: Any) -> None:
            watched.dialogs.append(opened.message)
            await opened.dismiss()

        await context.route("**/*", route)
        context.on("dialog", dialog)
        context.on("weberror", lambda error: watched.errors.append(str(error.error)))
        context.on(
            "console",
            lambda m: (
                watched.errors.append(m.text) if "Content Security Policy" in m.text else None
            ),
        )
        return context, watched


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium(web_stack: WebStack) -> AsyncIterator[Chromium]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=ARGS
        )
        running = Chromium(browser, web_stack)
        try:
            yield running
        finally:
            for context in running.contexts:
                await context.close()
            await browser.close()


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"distributed-{name}.png"))


async def test_sign_in_and_a_list_across_two_web_processes(
    chromium: Chromium, tmp_path: Path
) -> None:
    web1, web2 = chromium.stack.urls
    context, watched = await chromium.context()
    page = watched.page
    await sign_in(page, OWNER, PASSWORD)
    await expect(page).to_have_url(f"{web1}/app")

    # the same browser, the other process: signed in, with the balance made from the shell
    on_web2 = await context.new_page()
    await on_web2.goto(f"{web2}/app")
    await expect(on_web2.locator("#balance")).to_have_text(str(CREDITS))
    await shot(on_web2, "dashboard-web2")

    await on_web2.goto(f"{web2}/app/jobs/new")
    chosen: FilePayload = {
        "name": "replicas.csv",
        "mimeType": "text/csv",
        "buffer": list_csv(LIST_ROWS),
    }
    await on_web2.get_by_label("File").set_input_files(files=[chosen])
    await on_web2.get_by_role("button", name="Upload and preview").click()
    await expect(on_web2.locator("#cost")).to_have_text(str(COST))
    await shot(on_web2, "preview-web2")
    await on_web2.get_by_role("button", name="Start validation").click()
    await expect(on_web2).to_have_url(re.compile(re.escape(web2) + r"/app/jobs/[0-9a-f]{32}$"))
    job_path = urlsplit(on_web2.url).path

    # the job page on web 1 too: both follow the progress to the end
    await page.goto(job_path)
    rows = str(len(LIST_ROWS) - 1)
    for shown in (page, on_web2):
        await expect(shown.locator("#job-status")).to_have_text("Completed", timeout=60_000)
        await expect(shown.locator("#rows-done")).to_have_text(rows)
        await expect(shown.locator("#rows-total")).to_have_text(rows)
        await expect(shown.locator(".job-progress")).to_contain_text("(100%)")
    await shot(page, "job-web1")

    whole = result_rows(await download(page, "all", tmp_path))  # from S3, pre-signed
    width = len(LIST_ROWS[0])
    assert whole[0] == [*LIST_ROWS[0], *RESULT_COLUMNS]
    assert [tuple(row[:width]) for row in whole[1:]] == LIST_ROWS[1:]
    assert [row[width] for row in whole[1:]] == EXPECTED
    deliverable = result_rows(await download(on_web2, "deliverable", tmp_path))
    assert deliverable == [whole[0], *(row for row in whole[1:] if row[width] == "deliverable")]
    await on_web2.goto(f"{web2}/app")
    # charged the cost: no unknown result to refund
    await expect(on_web2.locator("#balance")).to_have_text(str(CREDITS - COST))
    await shot(on_web2, "dashboard-after-web2")

    # another account sees nothing of it, on either process
    _, other = await chromium.context()
    await sign_in(other.page, OTHER, PASSWORD)
    await expect(other.page).to_have_url(f"{web1}/app")
    for base in (web1, web2):
        answer = await other.page.goto(f"{base}{job_path}")
        assert answer is not None and answer.status == 404
        answer = await other.page.goto(f"{base}{job_path}/download/all")
        assert answer is not None and answer.status == 404
    for seen in (watched, other):
        assert seen.dialogs == [] and seen.outside == [] and seen.errors == []
