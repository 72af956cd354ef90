"""The whole SaaS in a real browser: the app of `mailvet run all` (web/site.py build_site:
sign-in, account, admin and lists areas, the outbox sender) with the pipeline in the same
process on the memory bus and fake DNS/SMTP, served by uvicorn on http://localhost:PORT;
its mail to the tests' SMTP catcher (tests/mailcatcher.py) through the real SMTP mailer;
Google sign-in against tests/fake_oidc.py; Debian's Chromium through Playwright
(LIBRARIES-SAAS.md §7: never `playwright install`).

One site and one browser per module (`Harness`); each test opens its own browser contexts
(`harness.page()`: cookies of its own). Every page records the dialogs that open (none
may: an XSS payload that runs would `alert`) and every request to a host that is not the
site; those are aborted, so nothing leaves the machine, and a test says which outside hosts
it expected (Gravatar on the account page, the fake provider during a Google sign-in).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, Request, Route, async_playwright
from playwright.async_api import Error as PlaywrightError

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.bootstrap import build_deps
from mailvet.domain.accounts import Account
from mailvet.pipeline.runner import Pipeline
from mailvet.services.accounts import create_account
from mailvet.settings import load_settings
from mailvet.web.site import Site, build_site
from tests.browser import ARGS, CHROMIUM
from tests.fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeOidcProvider
from tests.fakes import FakeProber, FakeResolver
from tests.mailcatcher import MailCatcher
from tests.waiting import until
from tests.web.jobs_helpers import answer
from tests.web.shell_helpers import cheap_hasher

SCREENSHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "correct horse battery staple"
CODE = re.compile(r"\b(\d{6})\b")


class SkewedClock:
    """The app's clock: real time plus an offset a test moves forward (a second TOTP
    sign-in needs a newer 30-second step than the first one used)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Watched:
    """A page and what it did that it should not have."""

    page: Page
    dialogs: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)  # hosts of aborted requests
    errors: list[str] = field(default_factory=list)  # page errors and CSP reports

    def unexpected(self, *allowed: str) -> list[str]:
        return [host for host in self.outside if host not in allowed]


@dataclass
class Harness:
    base: str
    site: Site
    clock: SkewedClock
    catcher: MailCatcher
    oidc: FakeOidcProvider
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    # other servers of this machine the pages may reach (the fake Stripe Checkout)
    local_hosts: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        return urlsplit(self.base).netloc

    async def page(self) -> Watched:
        """A fresh browser context (no cookies) and its page, watched."""
        context = await self.browser.new_context(
            base_url=self.base, accept_downloads=True, viewport={"width": 1100, "height": 900}
        )
        self.contexts.append(context)
        page = await context.new_page()
        watched = Watched(page)
        site_host = self.host

        oidc_host = urlsplit(self.oidc.issuer).netloc

        def outside(url: str) -> str | None:
            target = urlsplit(url)
            if target.scheme in ("data", "blob") or target.netloc == site_host:
                return None
            return target.netloc

        def seen(request: Request) -> None:  # every request, redirects included
            host = outside(request.url)
            if host is not None:
                watched.outside.append(host)

        async def route(route: Route, request: Request) -> None:
            host = outside(request.url)
            if host is None or host == oidc_host or host in self.local_hosts:  # this machine
                await route.continue_()
            else:
                await route.abort()

        async def dialog(opened: Any) -> None:
            watched.dialogs.append(opened.message)
            await opened.dismiss()

        await context.route("**/*", route)
        page.on("dialog", dialog)
        page.on("request", seen)
        page.on("pageerror", lambda error: watched.errors.append(str(error)))
        page.on(
            "console",
            lambda m: (
                watched.errors.append(m.text) if "Content Security Policy" in m.text else None
            ),
        )
        return watched

    async def shot(self, page: Page, name: str, *, full: bool = False) -> None:
        """Save what the page shows (`full`: the whole page, slower) as screenshots/NAME.png."""
        SCREENSHOTS.mkdir(exist_ok=True)
        path = str(SCREENSHOTS / f"{name}.png")
        try:
            await page.screenshot(path=path, full_page=full)
        except PlaywrightError as exc:  # Chromium on a busy machine, now and then: once more
            if "Unable to capture screenshot" not in str(exc):
                raise
            await page.screenshot(path=path, full_page=full)

    async def mail(self, to: str, subject: str) -> EmailMessage:
        """The last message to `to` whose subject contains `subject` (waits for it)."""

        def liked(message: EmailMessage) -> bool:
            return message["To"] == to and subject in str(message["Subject"])

        found = await self.catcher.wait_for(liked, timeout=15)
        return found[-1]

    async def code_for(self, to: str) -> str:
        message = await self.mail(to, "confirmation code")
        found = CODE.search(text_of(message))
        assert found is not None, text_of(message)
        return found.group(1)

    async def account(self, email: str, *, admin: bool = False, credits: int = 100) -> Account:
        """An account made from the shell (confirmed, with PASSWORD)."""
        web = self.site.web
        async with web.database.session_maker() as session, session.begin():
            return await create_account(
                session,
                email=email,
                password=PASSWORD,
                first_name="Admin" if admin else "Bo",
                last_name="Smith",
                admin=admin,
                confirmed=True,
                credits=credits,
                hasher=web.hasher,
                now=self.clock(),
            )


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


@contextlib.asynccontextmanager
async def running_site(
    data_dir: Path,
    oidc: FakeOidcProvider,
    env: dict[str, str] | None = None,
    local_hosts: tuple[str, ...] = (),
) -> AsyncIterator[Harness]:
    """The site with `env` over its settings; `local_hosts`: the servers of this machine its
    pages may reach besides it and the fake provider."""
    catcher = MailCatcher()
    catcher.start()
    clock = SkewedClock()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)
            base = f"http://localhost:{sock.getsockname()[1]}"
            settings = load_settings(
                {
                    "MAILVET_DATA_DIR": str(data_dir),
                    "MAILVET_PUBLIC_URL": base,
                    "MAILVET_HEALTH_PORT": "0",
                    "MAILVET_WEB_RATE_LIMIT": "5000/minute",
                    "MAILVET_MAILER": "smtp",
                    "MAILVET_MAILER_HOST": "127.0.0.1",
                    "MAILVET_MAILER_PORT": str(catcher.port),
                    "MAILVET_GOOGLE_CLIENT_ID": CLIENT_ID,
                    "MAILVET_GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
                    "MAILVET_GOOGLE_DISCOVERY_URL": oidc.discovery_url,
                    **(env or {}),
                }
            )
            deps = await build_deps(
                settings,
                bus=MemoryBus(),
                resolver=FakeResolver(),
                prober=FakeProber(answer=answer),
                syntax_pool=None,
            )
            pipeline = Pipeline(deps)
            try:
                site = await build_site(deps, hasher=cheap_hasher(), clock=clock)
                await pipeline.start()
                server = _Server(uvicorn.Config(site.app, log_config=None, access_log=False))
                serving = asyncio.create_task(server.serve(sockets=[sock]))
                try:
                    await until(lambda: server.started or serving.done())
                    if serving.done():
                        serving.result()
                    async with async_playwright() as playwright:
                        browser = await playwright.chromium.launch(
                            executable_path=CHROMIUM, headless=True, args=ARGS
                        )
                        harness = Harness(
                            base, site, clock, catcher, oidc, browser, local_hosts=local_hosts
                        )
                        try:
                            yield harness
                        finally:
                            for context in harness.contexts:
                                await context.close()
                            await browser.close()
                finally:
                    server.should_exit = True
                    await serving
                    await site.close()  # after a failed start, too (idempotent)
            finally:
                await pipeline.stop()
                await deps.close()
    finally:
        catcher.close()
