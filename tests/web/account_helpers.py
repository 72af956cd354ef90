"""The account page and the administrators' pages under test: the SaaS app with the auth,
account and admin areas on a fresh embedded database (as tests/web/auth_helpers.py builds
it for the sign-in pages alone), and a picture to upload."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import build_deps
from mailvet.domain.identity import OidcClient
from mailvet.settings import load_settings
from mailvet.web.account import account_router
from mailvet.web.admin import admin_router
from mailvet.web.app import create_app
from mailvet.web.auth import auth_router, build_auth_ports
from mailvet.web.context import build_web_context
from tests.fakes import FakeProber, FakeResolver, WatchedJobs
from tests.web.auth_helpers import HTML, AuthApp, Browser
from tests.web.shell_helpers import HTTPS, Clock, cheap_hasher, look


@asynccontextmanager
async def account_app(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    oidc: OidcClient | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[tuple[AuthApp, MemoryStorage]]:
    """The app with the auth, account and admin areas over a SQLite file in `data_dir`, on
    https; and its memory storage (the avatars, the jobs' files)."""
    settings = load_settings(
        {
            "MAILVET_DATA_DIR": str(data_dir),
            "MAILVET_PUBLIC_URL": HTTPS,
            "MAILVET_MAILER": "memory",
            **(env or {}),
        }
    )
    storage = MemoryStorage()
    deps = await build_deps(
        settings,
        jobs=WatchedJobs(),
        storage=storage,
        bus=MemoryBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )
    clock = clock or Clock()
    try:
        web = await build_web_context(settings, hasher=cheap_hasher(), clock=clock)
        try:
            ports = build_auth_ports(web, storage=storage, oidc=oidc)
            app = create_app(
                deps,
                web=web,
                areas=[auth_router(ports), account_router(ports), admin_router(ports)],
            )
            app.on_shutdown.append(ports.aclose)
            yield (
                AuthApp(
                    app=app,
                    web=web,
                    ports=ports,
                    clock=clock,
                    settings=settings,
                    url=settings.database,
                ),
                storage,
            )
        finally:
            await web.close()
    finally:
        await deps.close()


@asynccontextmanager
async def writing(url: str) -> AsyncIterator[AsyncSession]:
    """A transaction on the app's database from the test's own event loop, begun as a writer
    (SQLite's BEGIN IMMEDIATE: a read then a write would fail at once with "database is
    locked" when the app's background work holds the write lock just then)."""
    async with look(url) as database, database.unit_of_work(write=True) as session:
        yield session


def picture_bytes(kind: str = "PNG", size: tuple[int, int] = (40, 30)) -> bytes:
    """A small picture with a text chunk / comment that must not survive re-encoding."""
    out = io.BytesIO()
    picture = Image.new("RGB", size, (200, 30, 30))
    if kind == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Comment", "secret-metadata")
        picture.save(out, "PNG", pnginfo=info)
    else:
        picture.save(out, kind, comment=b"secret-metadata")
    return out.getvalue()


async def upload(
    b: Browser, path: str, name: str, data: bytes, content_type: str = "image/png"
) -> httpx.Response:
    """Post a multipart form with one file and the CSRF token (as a browser's file field)."""
    if not b.token:
        await b.get("/app/account")
    return await b.request(
        "POST",
        path,
        data={"_csrf_token": b.token},
        files={"picture": (name, data, content_type)},
        headers=HTML,
    )
