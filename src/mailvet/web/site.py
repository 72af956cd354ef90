"""The whole SaaS of one web process: `build_site(deps, roles=...)`.

What `mailvet run web` / `mailvet run all` serve, and what the browser tests serve: the
shell (web/app.py `create_app` with a `WebContext`), the sign-in pages (web/auth/), the
account page (web/account/) and the administrators' pages (web/admin/) beside the lists area
create_app mounts itself, and the web role's background work, started and stopped with the
app's lifespan (so it runs in the loop that serves it):
- the mail outbox sender (services/outbox.py) through the mailer of MAILVET_MAILER;
- the completion webhooks' sender (services/webhooks.py), resolving hosts with the
  pipeline's resolver (`deps.resolver`);
- the housekeeping of sessions and rate counters (web/context.py);
- the retention purge of lists and results (services/jobs.py, MAILVET_RETENTION_DAYS), with
  the sweeps that finish what a crash left undone: job starts never submitted (through the
  process's bus) and completion mail never queued.

Every piece can be given instead (tests: a cheap hasher, a moving clock, the fake OpenID
provider's client, the memory mailer). The caller owns `deps`; `Site.close()` (also run on
the app's shutdown) closes what was built here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from argon2 import PasswordHasher
    from litestar import Litestar

    from mailvet.bootstrap import Deps
    from mailvet.clock import Clock
    from mailvet.domain.identity import Captcha, OidcClient
    from mailvet.domain.mail import Mailer
    from mailvet.domain.ports import MessageBus, ObjectStorage
    from mailvet.services.webhooks import HostResolver
    from mailvet.web.auth.ports import AuthPorts
    from mailvet.web.context import WebContext

log = structlog.get_logger(__name__)


@dataclass
class Site:
    app: Litestar
    web: WebContext
    ports: AuthPorts
    mailer: Mailer
    storage: ObjectStorage
    bus: MessageBus
    resolver: HostResolver
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def start(self) -> None:
        """Start the background work (idempotent; the app's startup hook)."""
        if self.tasks:
            return
        from mailvet.services.jobs import run_retention
        from mailvet.services.outbox import OutboxSender
        from mailvet.services.webhooks import WebhookSender
        from mailvet.web.context import run_housekeeping

        web = self.web
        sender = OutboxSender(web.database, self.mailer, web.settings, web.clock)
        hooks = WebhookSender(web.database, self.resolver, web.settings, web.clock)
        self.tasks = [
            asyncio.create_task(sender.run_forever(), name="mail-outbox"),
            asyncio.create_task(hooks.run_forever(), name="webhooks"),
            asyncio.create_task(run_housekeeping(web), name="web-housekeeping"),
            asyncio.create_task(
                run_retention(
                    web.database,
                    self.storage,
                    retention_days=web.settings.web.retention_days,
                    clock=web.clock,
                    bus=self.bus,
                ),
                name="retention",
            ),
        ]

    async def stop(self) -> None:
        """Stop the background work (the app's shutdown hook)."""
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        """Stop, then close what `build_site` built (HTTP clients, the database handle)."""
        await self.stop()
        closers, self.closers = self.closers, []
        for close in reversed(closers):
            await close()


async def build_site(
    deps: Deps,
    *,
    roles: Sequence[str] = ("web",),
    web: WebContext | None = None,
    hasher: PasswordHasher | None = None,
    clock: Clock | None = None,
    mailer: Mailer | None = None,
    oidc: OidcClient | None = None,
    captcha: Captcha | None = None,
) -> Site:
    """The SaaS app over `deps` (see the module docstring). SettingsError (from the web
    context) when the secret key is missing outside the embedded default."""
    from mailvet.adapters.mail import build_mailer
    from mailvet.web.account import account_router
    from mailvet.web.admin import admin_router
    from mailvet.web.api import api_router
    from mailvet.web.api.compat import compat_router
    from mailvet.web.api_keys import api_keys_router
    from mailvet.web.app import create_app
    from mailvet.web.auth import auth_router, build_auth_ports
    from mailvet.web.billing import billing_router
    from mailvet.web.context import build_web_context
    from mailvet.web.webhooks import webhooks_router

    closers: list[Callable[[], Awaitable[Any]]] = []
    if web is None:
        web = await build_web_context(deps.settings, hasher=hasher, clock=clock)
        closers.append(web.close)
    try:
        ports = build_auth_ports(web, storage=deps.storage, captcha=captcha, oidc=oidc)
        closers.append(ports.aclose)
        app = create_app(
            deps,
            web=web,
            areas=[
                auth_router(ports),
                account_router(ports),
                billing_router(ports),  # /app/billing: credits, Checkout, the portal
                admin_router(ports),
                api_keys_router(ports),
                webhooks_router(ports, deps.resolver),
                api_router(),
                compat_router(),  # the original's /api/validate-email, /api/get-credit-balance
            ],
            roles=roles,
        )
        site = Site(
            app=app,
            web=web,
            ports=ports,
            mailer=mailer if mailer is not None else build_mailer(deps.settings.mailer),
            storage=deps.storage,
            bus=deps.bus,
            resolver=deps.resolver,
            closers=closers,
        )
    except BaseException:
        for close in reversed(closers):
            await close()
        raise
    app.on_startup.append(site.start)
    app.on_shutdown.append(site.close)
    return site
