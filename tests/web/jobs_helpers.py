"""The lists area under test: the SaaS app on a fresh embedded SQLite file (jobs, accounts and
ledger in it, as in production), the pipeline in the same process on the memory bus and
fake DNS/SMTP, served by a real uvicorn on 127.0.0.1 in the test's own event loop (the
test client buffers whole bodies, so it cannot follow Server-Sent Events: LIBRARIES-SAAS
1.6). Accounts are made through services.accounts and signed in through the shell's test
area (/t/sign-in/<id>, tests/web/shell_helpers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, build_deps
from mailvet.domain.accounts import Account
from mailvet.domain.ports import ObjectStorage
from mailvet.domain.smtp_reply import Reply
from mailvet.pipeline.runner import Pipeline
from mailvet.services.accounts import create_account
from mailvet.settings import load_settings
from mailvet.web.app import create_app
from mailvet.web.context import WebContext, build_web_context
from mailvet.web.jobs.results import RewriteTurns
from tests.fakes import ACCEPT, UNKNOWN, FakeProber, FakeResolver
from tests.sse import SseParser
from tests.waiting import until
from tests.web.shell_helpers import CSRF_INPUT, cheap_hasher, session_area

HTML = {"accept": "text/html"}
TRY_LATER = Reply(451, "4.3.0", "try again later")


def answer(recipient: str) -> Reply:
    """The fake mail servers: `gone...` has no mailbox, `later...` is answered 451 (unknown),
    anything else exists."""
    if recipient.startswith(("gone", "mailvet-")):
        return UNKNOWN
    if recipient.startswith("later"):
        return TRY_LATER
    return ACCEPT


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class ListsApp:
    base_url: str
    web: WebContext
    deps: Deps
    storage: ObjectStorage
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    app: Any = None  # the Litestar app served

    async def account(self, email: str, *, credits: int = 100, confirmed: bool = True) -> Account:
        async with self.web.database.session_maker() as session, session.begin():
            return await create_account(
                session,
                email=email,
                password=None,
                confirmed=confirmed,
                credits=credits,
                hasher=self.web.hasher,
                now=datetime.now(UTC),
            )

    async def browser(self, account: Account | None = None) -> Browser:
        """A cookie-keeping client, signed in as `account` when given."""
        client = httpx.AsyncClient(base_url=self.base_url, headers=HTML, timeout=20)
        self.clients.append(client)
        browser = Browser(client)
        if account is not None:
            answer = await browser.post(f"/t/sign-in/{account.id}")
            assert answer.status_code == 200, answer.text
        return browser


@dataclass
class Browser:
    client: httpx.AsyncClient
    token: str = ""

    async def csrf(self) -> str:
        if not self.token:
            page = await self.client.get("/")
            found = CSRF_INPUT.search(page.text)
            assert found is not None
            self.token = found.group(1)
        return self.token

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    async def post(
        self, path: str, data: Mapping[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return await self.client.post(
            path, data={"_csrf_token": await self.csrf(), **(data or {})}, **kwargs
        )

    async def upload(self, name: str, content: bytes, media: str = "text/csv") -> httpx.Response:
        """Post a list on the new-list form; the answer is the redirect to its preview."""
        return await self.post("/app/jobs/new", files={"file": (name, content, media)})

    async def start(self, preview_path: str, **fields: str) -> httpx.Response:
        page = await self.get(preview_path)
        column = re.search(r'name="email_column" value="(\d+)"', page.text)
        assert column is not None, page.text
        return await self.post(f"{preview_path}/start", {"email_column": column.group(1), **fields})

    async def events(self, job_path: str) -> list[tuple[str, str]]:
        """(event, data) of the job page's stream, until its `done` event."""
        seen: list[tuple[str, str]] = []
        async with self.client.stream("GET", f"{job_path}/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            parser = SseParser()
            async for line in stream.aiter_lines():
                if (event := parser.feed(line)) is not None:
                    seen.append(event)
                    if event[0] == "done":
                        return seen
        return seen


@contextlib.asynccontextmanager
async def lists_app(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    pipeline: bool = True,
    storage: ObjectStorage | None = None,
    prober: FakeProber | None = None,
) -> AsyncIterator[ListsApp]:
    # the socket first: MAILVET_PUBLIC_URL is the address the app really answers at (the
    # links it makes, like S3's way back after a direct upload, lead to it)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with _lists_app_on(sock, base_url, data_dir, env, pipeline, storage, prober) as lists:
            yield lists


@contextlib.asynccontextmanager
async def _lists_app_on(
    sock: socket.socket,
    base_url: str,
    data_dir: Path,
    env: Mapping[str, str] | None,
    pipeline: bool,
    storage: ObjectStorage | None,
    prober: FakeProber | None,
) -> AsyncIterator[ListsApp]:
    settings = load_settings(
        {"MAILVET_DATA_DIR": str(data_dir), "MAILVET_PUBLIC_URL": base_url, **(env or {})}
    )
    store = storage or MemoryStorage()
    deps = await build_deps(
        settings,
        storage=store,
        bus=MemoryBus(),
        resolver=FakeResolver(),
        prober=prober or FakeProber(answer=answer),
        syntax_pool=None,
    )
    runner = Pipeline(deps) if pipeline else None
    try:
        web = await build_web_context(settings, hasher=cheap_hasher())
        try:
            app = create_app(deps, web=web, areas=[session_area()])
            if runner is not None:
                await runner.start()
            server = _Server(uvicorn.Config(app, log_config=None, access_log=False))
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            await until(lambda: server.started or serving.done())
            lists = ListsApp(base_url=base_url, web=web, deps=deps, storage=store, app=app)
            try:
                yield lists
            finally:
                for client in lists.clients:
                    await client.aclose()
                server.should_exit = True
                await serving
        finally:
            if runner is not None:
                await runner.stop()
            await web.close()
    finally:
        await deps.close()


@contextlib.asynccontextmanager
async def every_turn_held(
    turns: RewriteTurns, at_once: int
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """All `at_once` turns of `turns` held by the test until the block ends (a rewrite asked
    for meanwhile waits); yields `free_one()`, which gives one of them back."""
    async with contextlib.AsyncExitStack() as held:
        for _ in range(at_once - 1):
            await held.enter_async_context(turns.turn())
        last = turns.turn()
        await last.__aenter__()
        freed = False

        async def free_one() -> None:
            nonlocal freed
            freed = True
            await last.__aexit__(None, None, None)

        try:
            yield free_one
        finally:
            if not freed:
                await last.__aexit__(None, None, None)
