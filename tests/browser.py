"""How the browser tests start Debian's Chromium (playwright's `executable_path` and `args`):
one copy for tests/web/test_shell_browser.py and the e2e harness; and a watched page of it
(`watched_page`) for the browser tests of tests/web."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Dialog, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# A browser test without Debian's Chromium is skipped, but not under
# MAILVET_TEST_SERVICES=required (`make test`, CI, which install it): there it runs and fails.
NEEDS_CHROMIUM = pytest.mark.skipif(
    shutil.which("chromium") is None and os.environ.get("MAILVET_TEST_SERVICES") != "required",
    reason="Debian chromium not installed (apt-get install chromium)",
)


@dataclass(frozen=True)
class WatchedPage:
    """A page of a fresh Chromium with what it said: console errors and warnings and
    uncaught page errors in `problems` (a CSP violation is one), the message of every
    dialog (dismissed: an alert from a hostile value) in `dialogs`."""

    context: BrowserContext
    page: Page
    problems: list[str]
    dialogs: list[str]

    async def sign_in(self, base_url: str, account_id: str) -> None:
        """Sign in through the test apps' `/t/sign-in/{id}` route, with the CSRF token of
        the home page's form (the cookie lands in this page's context)."""
        await self.page.goto(base_url + "/")
        token = await self.page.locator('input[name="_csrf_token"]').first.get_attribute("value")
        assert token
        signed = await self.context.request.post(
            f"{base_url}/t/sign-in/{account_id}", headers={"x-csrftoken": token}
        )
        assert signed.status == 200


@asynccontextmanager
async def watched_page(playwright: Playwright) -> AsyncIterator[WatchedPage]:
    """Debian's Chromium (headless, ARGS) with one page in a new context, watched; the
    browser is closed on the way out."""
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
    try:
        context = await browser.new_context()
        page = await context.new_page()
        watched = WatchedPage(context=context, page=page, problems=[], dialogs=[])
        page.on(
            "console",
            lambda m: watched.problems.append(m.text) if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: watched.problems.append(str(e)))

        async def refuse(dialog: Dialog) -> None:
            watched.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", refuse)
        yield watched
    finally:
        await browser.close()
