"""What the SaaS pages need beyond the pipeline's ports: `WebContext`, built once per process.

`build_web_context(settings)` opens the database of the accounts, ledger, outbox, sessions
and counters (the same URL as the jobs: the embedded SQLite file, migrated on first use, or
PostgreSQL migrated by `mailvet db upgrade`), settles the secret key, and makes the password
hasher. Tests pass their own pieces as keywords (a cheap hasher, a moving clock, a database
they created). The caller closes it (`await context.close()`).

The secret key (CSRF tokens, TOTP encryption, mailed-link signatures): MAILVET_SECRET_KEY;
outside the embedded default (PostgreSQL or RabbitMQ: several processes that must agree on
it) the process refuses to start without it; on the embedded default one is generated once
and kept in `<data_dir>/secret_key` (mode 0600), so sign-ins survive a restart.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar.di import NamedDependency
from litestar.params import SkipValidation

from mailvet.clock import Clock, utc_now
from mailvet.pipeline.engine import Engine
from mailvet.services.invoice_cache import InvoiceCache
from mailvet.settings import Settings, SettingsError

if TYPE_CHECKING:
    from argon2 import PasswordHasher

    from mailvet.adapters.db.database import Database
    from mailvet.domain.payments import Payments

SECRET_KEY_FILE = "secret_key"  # noqa: S105  (a file name, not a secret)
SECRET_KEY_MIN_LENGTH = 32


@dataclass
class WebContext:
    """Handlers take it as `web: Web` (and the pipeline's engine as `engine: EngineDep`);
    open a unit of work with `async with web.database.unit_of_work(write=...) as session:`."""

    settings: Settings
    database: Database
    secret_key: str
    hasher: PasswordHasher
    clock: Clock = utc_now
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    # Stripe (MAILVET_BILLING=stripe), else None: billing off, nothing sold
    payments: Payments | None = None
    # the billing page's invoices from Stripe, a minute per account (services/invoice_cache)
    invoice_cache: InvoiceCache = field(default_factory=InvoiceCache)

    @property
    def https(self) -> bool:
        """`settings.web.https`, for web/sessions.py until it reads that itself."""
        return self.settings.web.https

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


def is_embedded(settings: Settings) -> bool:
    """The embedded default: one process on a SQLite file and the in-memory bus."""
    return settings.database.startswith("sqlite") and settings.bus == "memory"


def resolve_secret_key(settings: Settings) -> str:
    """MAILVET_SECRET_KEY, or on the embedded default the one kept in the data folder (made
    on first use). SettingsError outside the embedded default without one, or when it is
    too short to be a key."""
    given = settings.web.secret_key
    if given:
        if len(given) < SECRET_KEY_MIN_LENGTH:
            raise SettingsError(
                f"MAILVET_SECRET_KEY must be at least {SECRET_KEY_MIN_LENGTH} characters"
            )
        return given
    if not is_embedded(settings):
        raise SettingsError(
            "MAILVET_SECRET_KEY is required outside the embedded default (PostgreSQL or"
            " RabbitMQ): every web process must sign with the same key"
        )
    return _kept_secret(Path(settings.data_dir) / SECRET_KEY_FILE)


def _kept_secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        kept = path.read_text(encoding="ascii").strip()
        if len(kept) < SECRET_KEY_MIN_LENGTH:
            raise SettingsError(f"{path} does not hold a secret key; delete it") from None
        return kept
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key + "\n")
    return key


async def build_web_context(
    settings: Settings,
    *,
    database: Database | None = None,
    hasher: PasswordHasher | None = None,
    clock: Clock | None = None,
    payments: Payments | None = None,
) -> WebContext:
    """The context of `settings`, or with the pieces given. Checks the secret key and the
    billing settings first (a refusal opens nothing); a database or Stripe gateway built here
    is closed by `WebContext.close`. `payments`: the Payments port (default: with
    MAILVET_BILLING=stripe, the Stripe gateway of the settings; else none)."""
    if missing := settings.billing.missing():
        raise SettingsError(f"MAILVET_BILLING=stripe needs {', '.join(missing)}")
    secret_key = resolve_secret_key(settings)
    closers: list[Callable[[], Awaitable[Any]]] = []
    if database is None:
        from mailvet.adapters.db.database import make_database
        from mailvet.bootstrap import prepare_schema

        await prepare_schema(settings.database)
        database = make_database(settings.database)
        closers.append(database.dispose)
    if hasher is None:
        from argon2 import PasswordHasher

        hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory parameters
    if payments is None and settings.billing.stripe:
        from mailvet.adapters.payments.stripe_gateway import StripeGateway

        gateway = StripeGateway(
            settings.billing.api_key,
            api_base=settings.billing.api_base,
            max_network_retries=settings.billing.max_network_retries,
            timeout=settings.billing.timeout,
        )
        closers.append(gateway.aclose)
        payments = gateway
    return WebContext(
        settings=settings,
        database=database,
        secret_key=secret_key,
        hasher=hasher,
        clock=clock or utc_now,
        closers=closers,
        payments=payments,
    )


# handler parameter annotations (the value is the object create_app was given, not validated)
Web = NamedDependency[SkipValidation[WebContext]]
EngineDep = NamedDependency[SkipValidation[Engine]]


HOUSEKEEPING_EVERY = 3600.0


async def housekeeping_once(context: WebContext) -> tuple[int, int]:
    """Delete expired sessions and stale rate counters; returns how many of each."""
    from mailvet.services import sessions, throttle

    async with context.database.unit_of_work(write=True) as session:
        now = context.clock()
        ended = await sessions.purge_expired(session, now=now)
        counters = await throttle.purge_stale(session, now=now)
    return ended, counters


async def run_housekeeping(context: WebContext, every: float = HOUSEKEEPING_EVERY) -> None:
    """`housekeeping_once` now and every `every` seconds, until cancelled (a task of the web
    role). A failed round is logged and the next one tried."""
    import asyncio

    import structlog

    log = structlog.get_logger(__name__)
    while True:
        try:
            ended, counters = await housekeeping_once(context)
            log.info("web_housekeeping", sessions_ended=ended, counters_deleted=counters)
        except Exception as exc:  # the database may be down for a while
            log.warning("web_housekeeping_failed", error=type(exc).__name__)
        await asyncio.sleep(every)
