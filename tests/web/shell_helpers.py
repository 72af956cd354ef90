"""The web shell under test: a SaaS app on a fresh embedded database, a moving clock, and a
small test area that signs in and out through the session API (web/sessions.py) the way
the accounts pages do."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import argon2
from litestar import Litestar, Request, Router, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.testing import AsyncTestClient
from litestar.types import ControllerRouterHandler
from sqlalchemy import func, select

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.db.database import Database, make_database
from mailvet.adapters.db.session_models import RateCounterRow, WebSessionRow
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, build_deps
from mailvet.services.sessions import end_all_sessions
from mailvet.settings import load_settings
from mailvet.web.app import create_app
from mailvet.web.context import Web, WebContext, build_web_context
from mailvet.web.sessions import (
    current_token_hash,
    flash,
    request_account,
    requires_login,
    sign_in,
    sign_out,
)
from tests.fakes import FakeProber, FakeResolver, MovingClock, WatchedJobs

HTTPS = "https://testserver.local"
CSRF_INPUT = re.compile(r'name="_csrf_token" value="([^"]+)"')
START = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)


def cheap_hasher() -> argon2.PasswordHasher:
    return argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


@dataclass
class Clock(MovingClock):
    """tests.fakes.MovingClock, starting at START (30 s into a minute and an hour)."""

    now: datetime = START


@dataclass
class Shell:
    app: Litestar
    web: WebContext
    deps: Deps
    clock: Clock
    url: str  # the database's URL, for a second app or a look from the test's loop
    extra: dict[str, Any] = field(default_factory=dict)


def session_area() -> ControllerRouterHandler:
    """What an area does with the session API, behind /t/ (test only)."""

    @post("/sign-in/{account_id:str}", status_code=200)
    async def do_sign_in(
        request: Request[Any, Any, Any], account_id: FromPath[str], web: Web
    ) -> str:
        sign_in(request, account_id, authenticated_at=web.clock())
        return "ok"

    @post("/sign-out", status_code=200)
    async def do_sign_out(request: Request[Any, Any, Any]) -> str:
        sign_out(request)
        return "ok"

    @post("/flash", status_code=200)
    async def do_flash(request: Request[Any, Any, Any]) -> str:
        flash(request, "saved <b>", "success")
        return "ok"

    @get("/whoami")
    async def whoami(request: Request[Any, Any, Any]) -> dict[str, str | None]:
        signed = request_account(request)
        return {"account": signed.account_id if signed else None}

    @get("/private", guards=[requires_login])
    async def private() -> str:
        return "secret"

    @post("/end-others", status_code=200)
    async def end_others(request: Request[Any, Any, Any], web: Web) -> dict[str, int]:
        signed = request_account(request)
        assert signed is not None
        async with web.database.unit_of_work() as session:
            ended = await end_all_sessions(
                session, signed.account_id, except_token_hash=current_token_hash(request)
            )
        return {"ended": ended}

    @post("/end-all-and-flash", status_code=200)
    async def end_all_and_flash(request: Request[Any, Any, Any], web: Web) -> dict[str, int]:
        signed = request_account(request)
        assert signed is not None
        async with web.database.unit_of_work() as session:
            ended = await end_all_sessions(session, signed.account_id)  # this one too
        flash(request, "signed out everywhere")
        return {"ended": ended}

    @get("/boom")
    async def boom() -> str:
        raise RuntimeError("broken on purpose")

    return Router(
        path="/t",
        route_handlers=[
            do_sign_in,
            do_sign_out,
            do_flash,
            whoami,
            private,
            end_others,
            end_all_and_flash,
            boom,
        ],
    )


def api_area() -> ControllerRouterHandler:
    """Stands for the API under /api/* in the shell's tests (the SaaS app has no anonymous job
    API any more; the keyed API comes later): a POST that takes anything, and a lookup that
    is never found."""

    @post("/echo", status_code=201)
    async def echo() -> dict[str, bool]:
        return {"ok": True}

    @get("/things/{thing_id:str}")
    async def thing(thing_id: FromPath[str]) -> dict[str, str]:
        raise NotFoundException(f"no such thing: {thing_id}")

    return Router(path="/api/t", route_handlers=[echo, thing])


@asynccontextmanager
async def shell(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    clock: Clock | None = None,
    areas: Sequence[ControllerRouterHandler] | None = None,
) -> AsyncIterator[Shell]:
    """An app over a SQLite file in `data_dir` (migrated), https by default."""
    settings = load_settings(
        {"MAILVET_DATA_DIR": str(data_dir), "MAILVET_PUBLIC_URL": HTTPS, **(env or {})}
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
            app = create_app(
                deps, web=web, areas=[session_area(), api_area()] if areas is None else areas
            )
            yield Shell(app=app, web=web, deps=deps, clock=clock, url=settings.database)
        finally:
            await web.close()
    finally:
        await deps.close()


@asynccontextmanager
async def client(app: Litestar, base_url: str = HTTPS) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app, base_url=base_url) as test_client:
        yield test_client


@asynccontextmanager
async def look(url: str) -> AsyncIterator[Database]:
    """A database handle of the test's own event loop (the app runs in another one)."""
    database = make_database(url)
    try:
        yield database
    finally:
        await database.dispose()


async def session_rows(url: str) -> list[WebSessionRow]:
    async with look(url) as database, database.session_maker() as session:
        return list((await session.execute(select(WebSessionRow))).scalars())


async def counter_total(url: str) -> int:
    async with look(url) as database, database.session_maker() as session:
        total = await session.scalar(select(func.coalesce(func.sum(RateCounterRow.count), 0)))
        return int(total or 0)


async def csrf_token(test_client: AsyncTestClient[Litestar], path: str = "/") -> str:
    page = await test_client.get(path)
    found = CSRF_INPUT.search(page.text)
    assert found is not None, f"no CSRF field on {path}"
    return found.group(1)


def set_cookie_headers(headers: Any) -> list[str]:
    return [value for key, value in headers.multi_items() if key.lower() == "set-cookie"]


def session_cookie(headers: Any) -> str | None:
    """The `mailvet_session` value a response sets ("" when it clears it), or None."""
    for value in set_cookie_headers(headers):
        name, _, rest = value.partition("=")
        if name.strip() == "mailvet_session":
            return rest.split(";", 1)[0].strip().strip('"')
    return None
