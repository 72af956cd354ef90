"""The whole SaaS as `mailvet run web` serves it (web/site.py `build_site`), under test: on a
fresh embedded SQLite file, memory storage and bus, fake DNS/SMTP, a cheap hasher, and the
mailer given by the test (the memory one by default). Accounts are made through
services.accounts from the test's own loop and sign in through the real /login form
(tests/web/auth_helpers.py `log_in`): this app has no test area."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.mail.memory import MemoryMailer
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, build_deps
from mailvet.domain.accounts import Account
from mailvet.domain.mail import Mailer
from mailvet.services.accounts import create_account
from mailvet.settings import load_settings
from mailvet.web.site import Site, build_site
from tests.fakes import FakeProber, FakeResolver
from tests.web.account_helpers import writing
from tests.web.auth_helpers import PASSWORD
from tests.web.shell_helpers import HTTPS, Clock, cheap_hasher


@dataclass
class SiteUnderTest:
    site: Site
    deps: Deps
    storage: MemoryStorage
    url: str  # the database's URL, for a look from the test's loop

    async def account(
        self, email: str, *, admin: bool = False, credits: int = 100, confirmed: bool = True
    ) -> Account:
        """An account with the password PASSWORD."""
        async with writing(self.url) as session:
            return await create_account(
                session,
                email=email,
                password=PASSWORD,
                admin=admin,
                confirmed=confirmed,
                credits=credits,
                hasher=cheap_hasher(),
                now=datetime.now(UTC),
            )


@asynccontextmanager
async def site_under_test(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    mailer: Mailer | None = None,
    mailer_from_settings: bool = False,
    clock: Clock | None = None,
) -> AsyncIterator[SiteUnderTest]:
    """`mailer` None: a MemoryMailer, or with `mailer_from_settings` the one
    MAILVET_MAILER names (as `mailvet run web` builds it)."""
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
        storage=storage,
        bus=MemoryBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )
    try:
        if mailer is None and not mailer_from_settings:
            mailer = MemoryMailer()
        site = await build_site(deps, hasher=cheap_hasher(), mailer=mailer, clock=clock)
        try:
            yield SiteUnderTest(site=site, deps=deps, storage=storage, url=settings.database)
        finally:
            await site.close()
    finally:
        await deps.close()
