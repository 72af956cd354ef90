"""The sign-in pages under test: the SaaS app with the auth area on a fresh embedded database,
a moving clock, the outbox delivered to a memory mailer on demand, and a browser-like client
that posts forms with their CSRF token."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.mail.memory import MemoryMailer
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import build_deps
from mailvet.domain.identity import Captcha, OidcClient
from mailvet.services.outbox import OutboxSender
from mailvet.settings import Settings, load_settings
from mailvet.web.app import create_app
from mailvet.web.auth import AuthPorts, auth_router, build_auth_ports
from mailvet.web.context import WebContext, build_web_context
from tests.fakes import FakeProber, FakeResolver, WatchedJobs
from tests.web.shell_helpers import CSRF_INPUT, HTTPS, Clock, cheap_hasher, look

HTML = {"accept": "text/html,application/xhtml+xml"}
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a different long pass phrase"
CODE_IN_MAIL = re.compile(r"\b(\d{6})\b")
SECRET = re.compile(r'<code id="totp-secret">([A-Z2-7 ]+)</code>')
RECOVERY = re.compile(r"<li><code>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</code></li>")
LINK_IN_MAIL = re.compile(r"https://testserver\.local/reset-password\?token=[A-Za-z0-9_\-]+")


@dataclass
class AuthApp:
    app: Litestar
    web: WebContext
    ports: AuthPorts
    clock: Clock
    settings: Settings
    url: str  # the database's URL, for a look from the test's loop
    mailer: MemoryMailer = field(default_factory=MemoryMailer)

    async def deliver(self) -> list[EmailMessage]:
        """Send what the outbox holds (to the memory mailer); the messages sent now."""
        before = len(self.mailer.sent)
        async with look(self.url) as database:
            sender = OutboxSender(database, self.mailer, self.settings, self.clock)
            while await sender.run_once():
                pass
        return self.mailer.sent[before:]

    async def mail_to(self, address: str) -> list[EmailMessage]:
        await self.deliver()
        return self.mailer.to(address)

    async def code_for(self, address: str) -> str:
        """The code of the last confirmation mail to `address`."""
        mails = [m for m in await self.mail_to(address) if "confirmation code" in m["Subject"]]
        assert mails, f"no confirmation code was mailed to {address}"
        found = CODE_IN_MAIL.search(text_of(mails[-1]))
        assert found is not None
        return found.group(1)

    async def reset_link_for(self, address: str) -> str:
        mails = [m for m in await self.mail_to(address) if "Reset" in m["Subject"]]
        assert mails, f"no reset link was mailed to {address}"
        found = LINK_IN_MAIL.search(text_of(mails[-1]))
        assert found is not None
        return found.group(0)

    async def account_row(self, email: str) -> AccountRow | None:
        async with look(self.url) as database, database.session_maker() as session:
            query = select(AccountRow).where(AccountRow.email == email)
            return (await session.execute(query)).scalar_one_or_none()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


@asynccontextmanager
async def auth_app(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    captcha: Captcha | None = None,
    oidc: OidcClient | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[AuthApp]:
    """The SaaS app with the auth area over a SQLite file in `data_dir`, on https."""
    settings = load_settings(
        {
            "MAILVET_DATA_DIR": str(data_dir),
            "MAILVET_PUBLIC_URL": HTTPS,
            "MAILVET_MAILER": "memory",
            **(env or {}),
        }
    )
    deps = await build_deps(
        settings,
        jobs=WatchedJobs(),
        storage=MemoryStorage(),
        bus=MemoryBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )
    clock = clock or Clock()
    try:
        web = await build_web_context(settings, hasher=cheap_hasher(), clock=clock)
        try:
            ports = build_auth_ports(web, storage=deps.storage, captcha=captcha, oidc=oidc)
            app = create_app(deps, web=web, areas=[auth_router(ports)])
            app.on_shutdown.append(ports.aclose)
            yield AuthApp(
                app=app, web=web, ports=ports, clock=clock, settings=settings, url=settings.database
            )
        finally:
            await web.close()
    finally:
        await deps.close()


class Browser:
    """A test client used the way a browser uses the pages: GET a form, post it back with
    the CSRF token it carried, follow nothing by itself.

    Several browsers share one AsyncTestClient (`fresh()`), each with its own cookie jar:
    two test clients open at once on one app leak an anyio stream of the lifespan."""

    def __init__(self, client: AsyncTestClient[Litestar]) -> None:
        self.client = client
        self.jar = httpx.Cookies()
        self.token = ""

    def fresh(self) -> Browser:
        """Another browser (no cookies) on the same app."""
        return Browser(self.client)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.client.cookies = self.jar
        try:
            return await self.client.request(method, path, follow_redirects=False, **kwargs)
        finally:
            self.jar = self.client.cookies

    def set_cookie(self, name: str, value: str) -> None:
        self.jar.set(name, value, domain="testserver.local")

    def cookie(self, name: str) -> str | None:
        return self.jar.get(name)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**HTML, **kwargs.pop("headers", {})}
        answer = await self.request("GET", path, headers=headers, **kwargs)
        found = CSRF_INPUT.search(answer.text)
        if found is not None:
            self.token = found.group(1)
        return answer

    async def post(
        self, path: str, data: Mapping[str, str] | None = None, *, csrf: bool = True
    ) -> httpx.Response:
        if csrf and not self.token:
            await self.get("/")
        fields = {"_csrf_token": self.token, **(data or {})} if csrf else dict(data or {})
        return await self.request("POST", path, data=fields, headers=HTML)

    async def follow(self, answer: httpx.Response) -> httpx.Response:
        """The page a 303 leads to."""
        assert answer.status_code in (302, 303), (answer.status_code, answer.text[:2000])
        return await self.get(answer.headers["location"])

    async def whoami(self) -> str | None:
        """Who the app says is signed in (the Sign out button shows only then)."""
        page = await self.get("/")
        return "signed in" if 'action="/logout"' in page.text else None


@asynccontextmanager
async def browser(app: Litestar, base_url: str = HTTPS) -> AsyncIterator[Browser]:
    async with AsyncTestClient(app, base_url=base_url) as test_client:
        yield Browser(test_client)


# --- the flows, step by step -------------------------------------------------------------------


async def sign_up(
    b: Browser,
    email: str,
    *,
    password: str = PASSWORD,
    first_name: str = "Ann",
    last_name: str = "Lee",
    **extra: str,
) -> httpx.Response:
    await b.get("/signup")
    return await b.post(
        "/signup",
        {
            "email": email,
            "password": password,
            "first_name": first_name,
            "last_name": last_name,
            **extra,
        },
    )


async def log_in(b: Browser, email: str, password: str = PASSWORD, **extra: str) -> httpx.Response:
    await b.get("/login")
    return await b.post("/login", {"email": email, "password": password, **extra})


async def confirmed_account(s: AuthApp, b: Browser, email: str, **names: str) -> None:
    """Sign up and confirm with the mailed code (signed out afterwards)."""
    answer = await sign_up(b, email, **names)
    assert answer.status_code == 303 and answer.headers["location"] == "/confirm"
    confirmed = await b.post("/confirm", {"code": await s.code_for(email)})
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/login"


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def totp_now(secret: str, s: AuthApp) -> str:
    return pyotp.TOTP(secret).at(s.clock.now)


async def turn_on_totp(s: AuthApp, b: Browser) -> tuple[str, list[str]]:
    """From the two-factor page: the secret shown and the recovery codes shown once."""
    page = await b.get("/app/account/two-factor")
    assert "is <strong>off</strong>" in page.text
    setup = await b.post("/app/account/two-factor/setup")  # signed in just now: no password
    assert setup.status_code == 200, setup.text
    assert "<svg" in setup.text and "<script" not in setup.text.split("</head>")[1]
    assert setup.headers["cache-control"] == "no-store"
    found = SECRET.search(setup.text)
    assert found is not None
    secret = found.group(1).replace(" ", "")
    wrong = await b.post("/app/account/two-factor/enable", {"code": "000000"})
    assert wrong.status_code == 400
    again = SECRET.search(wrong.text)  # the same secret shown again
    assert again is not None and again.group(1).replace(" ", "") == secret
    enabled = await b.post("/app/account/two-factor/enable", {"code": totp_now(secret, s)})
    assert enabled.status_code == 200, enabled.text
    codes = RECOVERY.findall(enabled.text)
    assert len(codes) == 10
    assert 'download="mailvet-recovery-codes.txt"' in enabled.text
    assert all(code in enabled.text.split('href="data:text/plain')[1] for code in codes)
    return secret, codes
