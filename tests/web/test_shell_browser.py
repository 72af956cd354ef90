"""The shell in Debian's Chromium: the vendored htmx runs under the CSP with no violation,
the demo form posts through htmx (CSRF from hx-headers) and swaps its result in, and a
hostile address fires no script."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from litestar import Litestar

from tests.browser import NEEDS_CHROMIUM, watched_page
from tests.waiting import until
from tests.web.shell_helpers import shell

pytestmark = [
    pytest.mark.e2e,
    NEEDS_CHROMIUM,
]


@asynccontextmanager
async def served(app: Litestar) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done())  # uvicorn sets no event
        if task.done():
            task.result()  # it failed to start: say why
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://localhost:{port}"
    finally:
        server.should_exit = True
        await task


async def test_htmx_runs_under_the_csp_and_the_demo_swaps_in(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    env = {"MAILVET_PUBLIC_URL": "http://localhost"}
    async with (
        shell(tmp_path, env) as s,
        served(s.app) as base,
        async_playwright() as p,
        watched_page(p) as watched,
    ):
        page, problems, dialogs = watched.page, watched.problems, watched.dialogs
        await page.goto(base + "/")
        assert await page.evaluate("typeof window.htmx") == "object"
        await page.get_by_label("Email").fill("Ann@Example.com")
        await page.get_by_role("button", name="Check").click()
        await expect(page.locator("#demo-result dl")).to_contain_text("mx.example.com")
        assert page.url == base + "/"  # swapped in by htmx, no navigation
        payload = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
        await page.get_by_label("Email").fill(payload)
        await page.get_by_role("button", name="Check").click()
        await expect(page.locator("#demo-result")).to_contain_text("invalid_syntax")
        await page.goto(base + "/?email=" + payload.replace("#", "%23"))
        await expect(page.get_by_label("Email")).to_have_value(payload)
        assert dialogs == []
        assert [p for p in problems if "Content Security Policy" in p] == []
        assert await page.locator("img[src=x]").count() == 0
