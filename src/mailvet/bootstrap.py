"""The one composition root: settings in, wired ports out. Tests pass fakes as keywords.

`build_deps` wires everything a pipeline process needs; the narrower builders beside it
(`build_job_store`, `build_storage`, `build_bus`, ...) are what it is made of, and what a
command that needs less calls (`mailvet status` reads one job row: no DNS, SMTP, engine,
bus or S3). Nothing heavy is imported at module level: each adapter's library (SQLAlchemy,
dnspython, FastStream, minio) is imported when that adapter is built, and the DNS resolver
and the SMTP prober only when the first address needs the network.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mailvet.domain.credits import CreditLedger, FreeLedger, Shortfall
from mailvet.domain.job import Job
from mailvet.domain.job_events import JobEvents, NoJobEvents
from mailvet.domain.ports import (
    JobRepository,
    MailRoute,
    MessageBus,
    ObjectStorage,
    ProbeResult,
    Resolver,
    SmtpProber,
)
from mailvet.settings import Settings, SettingsError

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from mailvet.adapters.db.database import Database
    from mailvet.adapters.retry import RetryPolicy
    from mailvet.pipeline.engine import Engine
    from mailvet.pipeline.submit import JobLookup
    from mailvet.services.credits import SqlCreditLedger
    from mailvet.services.job_mail import JobMail
    from mailvet.services.webhooks import WebhookEvents

Closer = Callable[[], Awaitable[Any]]
J = TypeVar("J")
R = TypeVar("R")


@dataclass
class Deps:
    settings: Settings
    jobs: JobRepository
    storage: ObjectStorage
    bus: MessageBus
    resolver: Resolver
    prober: SmtpProber
    engine: Engine
    syntax_pool: Executor | None = None
    closers: list[Closer] = field(default_factory=list)
    # what intake reserves a job's credits through and the result generator settles them
    ledger: CreditLedger = field(default_factory=FreeLedger)
    # what the result generator tells of a completed job (the owner's mail)
    events: JobEvents = field(default_factory=NoJobEvents)

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


@dataclass
class JobStore(Generic[J]):
    """The job repository (or a reader) alone, with what releases it."""

    jobs: J
    closers: list[Closer] = field(default_factory=list)

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


def build_retry_policy(settings: Settings) -> RetryPolicy:
    """How a call to S3 or the database is tried again while it is unreachable: one policy
    per process, built by build_deps and handed to both adapters."""
    from mailvet.adapters.retry import RetryPolicy

    return RetryPolicy(retry_for=settings.storage.s3_retry_for)


async def build_job_store(
    settings: Settings,
    *,
    jobs: JobRepository | None = None,
    retry: RetryPolicy | None = None,
    database: SharedDatabase | None = None,
) -> JobStore[JobRepository]:
    """The job repository of `settings.database` (schema checked, the embedded SQLite file
    migrated, first), or `jobs` as given. SQLite: the stdlib repository (no SQLAlchemy to
    import or set up); PostgreSQL: the SQL repository, retrying through `retry` (default:
    build_retry_policy's), on `database`'s engine when given (its maker closes it), else on
    one of its own, closed with the store."""
    if jobs is not None:
        return JobStore(jobs)
    from mailvet.adapters.db.migrate import HEAD
    from mailvet.adapters.db.sqlite import SqliteJobRepository, sqlite_path

    await prepare_schema(settings.database)
    if sqlite_path(settings.database) is not None:
        embedded = SqliteJobRepository.open_current(settings.database, HEAD)
        if embedded is None:
            raise SettingsError(f"cannot open the job database {sqlite_path(settings.database)}")
        return JobStore(embedded, [embedded.close])
    from mailvet.adapters.db.repositories import SqlJobRepository

    policy = retry or build_retry_policy(settings)
    if database is not None:
        return JobStore(SqlJobRepository(database.get(), retry=policy))
    own = SharedDatabase(settings.database)
    return JobStore(SqlJobRepository(own.get(), retry=policy), [own.close])


async def build_job_reader(
    settings: Settings, *, jobs: JobLookup | None = None
) -> JobStore[JobLookup]:
    """What reads one job (`mailvet status`, `fetch`), or `jobs` as given: on an embedded
    SQLite file already at the newest schema, the stdlib repository without even the schema
    step; otherwise whatever build_job_store gives."""
    if jobs is not None:
        return JobStore(jobs)
    from mailvet.adapters.db.migrate import HEAD
    from mailvet.adapters.db.sqlite import SqliteJobRepository

    embedded = SqliteJobRepository.open_current(settings.database, HEAD)
    if embedded is not None:
        return JobStore(embedded, [embedded.close])
    store = await build_job_store(settings)
    return JobStore(store.jobs, store.closers)


def build_storage(settings: Settings, *, retry: RetryPolicy | None = None) -> ObjectStorage:
    """The storage of `settings.storage`; S3 retries through `retry` (default:
    build_retry_policy's)."""
    backend = settings.storage.backend
    if backend == "local":
        from mailvet.adapters.storage.local import LocalStorage

        return LocalStorage(settings.storage_root)
    if backend == "memory":
        from mailvet.adapters.storage.memory import MemoryStorage

        return MemoryStorage()
    if backend == "s3":
        from mailvet.adapters.storage.s3 import S3Storage

        cfg = settings.storage
        return S3Storage(
            cfg.s3_endpoint,
            cfg.s3_access_key,
            cfg.s3_secret_key,
            cfg.s3_bucket,
            secure=cfg.s3_secure,
            retry=retry or build_retry_policy(settings),
            public_endpoint=cfg.s3_public_endpoint,
            ca_file=cfg.s3_ca_file,
        )
    raise SettingsError(f"MAILVET_STORAGE={backend!r}: choose local, memory or s3")


def build_bus(settings: Settings) -> MessageBus:
    if settings.bus == "memory":
        from mailvet.adapters.bus.memory import MemoryBus

        bus = MemoryBus()
        # a short work queue: chunks wait in their job's queue, where fairness applies
        bus.set_bound("work", max(2, settings.engine.worker_concurrency))
        # finished chunks wait for the result generator here, not in memory without bound
        bus.set_bound("results", 4 * max(2, settings.engine.worker_concurrency))
        return bus
    if settings.bus == "rabbit":
        from mailvet.adapters.bus.rabbit import RabbitBus

        return RabbitBus(
            settings.rabbit.rabbitmq_url,
            prefix=settings.rabbit.prefix,
            delivery_limit=settings.rabbit.delivery_limit,
        )
    raise SettingsError(f"MAILVET_BUS={settings.bus!r}: choose memory or rabbit")


def syntax_process_count(settings: Settings) -> int:
    """How many processes syntax-only chunks get (0: none, run them in this process)."""
    wanted = settings.engine.syntax_processes
    if wanted >= 0:
        return wanted
    count = os.cpu_count() or 1
    return count if count >= 2 else 0  # one CPU: the event loop's own thread is as fast


POOL_PRELOAD = "mailvet.pipeline.chunk_output"  # where syntax_chunk, the pool's task, lives


def forkserver_pool(workers: int) -> Executor:
    """The syntax pool's processes. Not fork: this process already runs threads (SQLite
    driver, file I/O). A fork server is one fresh interpreter that imports the chunk code
    once and forks the workers from there: one interpreter start-up instead of one per
    worker."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context: BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        server = multiprocessing.get_context("forkserver")
        server.set_forkserver_preload([POOL_PRELOAD])
        context = server
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context)


class LazyProcessPool(Executor):
    """A process pool made on its first task: a run that sends none (a small list, DNS or
    SMTP checks) never starts a process, nor multiprocessing's resource tracker, which the
    pool's queues start at once. `make` builds the pool (forkserver_pool; tests pass a
    thread pool or a recording one)."""

    def __init__(self, workers: int, make: Callable[[int], Executor] = forkserver_pool) -> None:
        self.workers = workers
        self._make = make
        self._pool: Executor | None = None
        self._lock = threading.Lock()
        self._starting: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._pool is not None

    def _made(self) -> Executor:
        with self._lock:
            if self._pool is None:
                self._pool = self._make(self.workers)
            return self._pool

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        return self._made().submit(fn, *args, **kwargs)

    def warm(self) -> None:
        """Start the workers in a thread of its own and return at once, so that their
        start-up (the fork server's interpreter and imports, then a fork per worker, each
        loading the risk lists: up to a second on a busy machine) overlaps with reading the
        file instead of holding up the caller's event loop, and with it the counting."""
        with self._lock:
            if self._pool is not None or self._starting is not None:
                return
            self._starting = threading.Thread(
                target=self._start, name="syntax-pool-start", daemon=True
            )
            self._starting.start()

    def _start(self) -> None:
        from mailvet.pipeline.chunk_output import warm_up

        pool = self._made()
        for _ in range(self.workers):
            pool.submit(warm_up)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._starting is not None:
            self._starting.join()
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def build_syntax_pool(settings: Settings) -> LazyProcessPool | None:
    """Processes for syntax-only chunks (pure CPU); None when one process is enough.
    Nothing starts here: the pool is made when the first big syntax chunk is sent."""
    count = syntax_process_count(settings)
    return LazyProcessPool(count) if count > 0 else None


async def _shutdown_pool(pool: Executor) -> None:
    await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


async def prepare_schema(url: str) -> None:
    """The embedded SQLite database migrates itself; any other must be migrated already
    (`mailvet db upgrade`, the compose file's one-shot migrator).

    A SQLite file already at the newest revision is recognised by one stdlib query (no
    Alembic): the common case of every command after the first. A new SQLite file is made
    from the schema script in one step (adapters/db/sqlite_schema.py), not by Alembic."""
    from mailvet.adapters.db import migrate

    if url.startswith("sqlite"):
        if migrate.sqlite_is_current(url):
            return
        from mailvet.adapters.db.sqlite_schema import create_fresh

        if await asyncio.to_thread(create_fresh, url):
            return
        await migrate.upgrade_async(url)
        return
    found = await asyncio.to_thread(migrate.current, url)
    if found != migrate.HEAD:
        raise SettingsError(
            f"the database schema is at {found or 'nothing'}, not {migrate.HEAD}: "
            "run `mailvet db upgrade`"
        )


class LazyResolver:
    """The DNS resolver of `settings`, built (and dnspython imported) on its first lookup:
    a syntax-only run never pays for it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resolver: Resolver | None = None

    @property
    def built(self) -> bool:
        return self._resolver is not None

    def _get(self) -> Resolver:
        if self._resolver is None:
            from mailvet.adapters.dns import DnsResolver

            self._resolver = DnsResolver(self._settings.dns)
        return self._resolver

    async def mail_route(self, domain: str) -> MailRoute:
        return await self._get().mail_route(domain)

    async def host_addresses(self, host: str) -> list[str]:
        return await self._get().host_addresses(host)


class LazyProber:
    """The SMTP prober of `settings`, built on its first probe."""

    def __init__(self, settings: Settings, resolver: Resolver) -> None:
        self._settings = settings
        self._resolver = resolver
        self._prober: SmtpProber | None = None

    @property
    def built(self) -> bool:
        return self._prober is not None

    async def probe(
        self, hosts: Sequence[str], recipients: Sequence[str], *, solo: bool = False
    ) -> list[ProbeResult]:
        if self._prober is None:
            from mailvet.adapters.smtp import SmtpProber as RealProber

            self._prober = RealProber(self._settings.smtp, self._resolver)
        return await self._prober.probe(hosts, recipients, solo=solo)

    async def close(self) -> None:
        if self._prober is not None:
            await self._prober.close()


class SharedDatabase:
    """The one SQLAlchemy Database of `url` in this process, made (importing SQLAlchemy) on
    the first `get` and disposed once by `close`: the SQL job repository, the credit ledger
    and the completion mail share its engine instead of each making one for the same URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._database: Database | None = None

    @property
    def built(self) -> bool:
        return self._database is not None

    def get(self) -> Database:
        if self._database is None:
            from mailvet.adapters.db.database import make_database

            self._database = make_database(self.url)
        return self._database

    async def close(self) -> None:
        database, self._database = self._database, None
        if database is not None:
            await database.dispose()


class LazyCreditLedger:
    """The credit ledger on the shared database, made (with SQLAlchemy) when the first
    paying job reserves: a job without an owner (`mailvet validate`) pays nothing and never
    builds it."""

    def __init__(self, database: SharedDatabase) -> None:
        self._database = database
        self._ledger: SqlCreditLedger | None = None

    def _get(self) -> SqlCreditLedger:
        if self._ledger is None:
            from mailvet.services.credits import SqlCreditLedger

            self._ledger = SqlCreditLedger(self._database.get())
        return self._ledger

    def charges(self, job: Job) -> bool:
        return bool(job.owner)

    async def reserve(self, job: Job, cost: int) -> Shortfall | None:
        return await self._get().reserve(job, cost) if self.charges(job) else None

    async def settle(self, job: Job, charged: int) -> None:
        if self.charges(job):
            await self._get().settle(job, charged)


def build_ledger(settings: Settings, database: SharedDatabase) -> CreditLedger:
    """FreeLedger when MAILVET_CREDITS=off; else the ledger on `database` (built lazily;
    whoever made `database` closes it)."""
    if not settings.web.charging:
        return FreeLedger()
    return LazyCreditLedger(database)


class LazyJobEvents:
    """The owner's "job completed" mail (services/job_mail.py) and the job's completion
    webhook (services/webhooks.py) on the shared database, made when the first job with an
    owner completes: a job without one (`mailvet validate`) imports nothing for it and
    mails nobody. The webhook is queued even when the mail fails and the other way round;
    the first failure is raised after both were tried (the sweeps of the web role queue
    what was lost). A failed job gets its webhook only."""

    def __init__(self, database: SharedDatabase) -> None:
        self._database = database
        self._mail: JobMail | None = None
        self._hooks: WebhookEvents | None = None

    async def job_completed(self, job: Job) -> None:
        if not job.owner:
            return
        first: Exception | None = None
        for tell in (port.job_completed for port in self._made()):
            try:
                await tell(job)
            except Exception as exc:  # the other is told all the same
                first = first or exc
        if first is not None:
            raise first

    async def job_failed(self, job: Job) -> None:
        """The job's job.failed webhook (no mail: the job's page says what happened)."""
        if job.owner:
            await self._made()[1].job_failed(job)

    def _made(self) -> tuple[JobMail, WebhookEvents]:
        if self._mail is None or self._hooks is None:
            from mailvet.services.job_mail import JobMail
            from mailvet.services.webhooks import WebhookEvents

            self._mail = JobMail(self._database.get())
            self._hooks = WebhookEvents(self._database.get())
        return self._mail, self._hooks


def build_engine(settings: Settings, resolver: Resolver, prober: SmtpProber) -> Engine:
    from mailvet.pipeline.engine import Engine

    return Engine(
        resolver,
        prober,
        catch_all_check=settings.smtp.catch_all_check,
        cache_size=settings.engine.verdict_cache_size,
        verdict_ttl=settings.engine.verdict_ttl,
        unknown_ttl=settings.engine.unknown_ttl,
    )


async def build_deps(
    settings: Settings,
    *,
    jobs: JobRepository | None = None,
    storage: ObjectStorage | None = None,
    bus: MessageBus | None = None,
    resolver: Resolver | None = None,
    prober: SmtpProber | None = None,
    syntax_pool: Executor | None | bool = True,
    retry: RetryPolicy | None = None,
    ledger: CreditLedger | None = None,
    events: JobEvents | None = None,
) -> Deps:
    """Build every port from settings unless given; `await deps.close()` releases them.

    `syntax_pool`: True builds the process pool from settings; None or False runs syntax
    checks in this process; an Executor is used as given. `retry`: the one policy the S3
    storage and the SQL repository retry through (default: build_retry_policy's). `ledger`:
    the credit ledger (default: build_ledger's). `events`: what a completed job is told to
    (default: LazyJobEvents, the owner's mail).
    """
    retry = retry or build_retry_policy(settings)
    # one engine for the URL, shared and disposed last (closers run in reverse)
    database = SharedDatabase(settings.database)
    closers: list[Closer] = [database.close]
    store = await build_job_store(settings, jobs=jobs, retry=retry, database=database)
    closers.extend(store.closers)
    resolver = resolver or LazyResolver(settings)
    prober = prober or LazyProber(settings, resolver)
    engine = build_engine(settings, resolver, prober)
    closers.append(engine.close)
    if ledger is None:
        ledger = build_ledger(settings, database)
    if events is None:
        events = LazyJobEvents(database)
    pool: Executor | None
    if syntax_pool is True:
        built = build_syntax_pool(settings)
        if built is not None:
            closers.append(lambda: _shutdown_pool(built))
        pool = built
    else:
        pool = syntax_pool or None
    return Deps(
        settings=settings,
        jobs=store.jobs,
        storage=storage or build_storage(settings, retry=retry),
        bus=bus or build_bus(settings),
        resolver=resolver,
        prober=prober,
        engine=engine,
        syntax_pool=pool,
        closers=closers,
        ledger=ledger,
        events=events,
    )
