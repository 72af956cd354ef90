"""The one composition root: settings in, wired ports out. Tests pass fakes as keywords."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mailvet.adapters.dns import DnsResolver
from mailvet.adapters.smtp import SmtpProber
from mailvet.domain.ports import JobRepository, MessageBus, ObjectStorage, Resolver
from mailvet.domain.ports import SmtpProber as SmtpProberPort
from mailvet.pipeline.engine import Engine
from mailvet.settings import Settings, SettingsError


@dataclass
class Deps:
    settings: Settings
    jobs: JobRepository
    storage: ObjectStorage
    bus: MessageBus
    resolver: Resolver
    prober: SmtpProberPort
    engine: Engine
    syntax_pool: Executor | None = None
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()
        self.closers.clear()


def build_storage(settings: Settings) -> ObjectStorage:
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
            retry_for=cfg.s3_retry_for,
            public_endpoint=cfg.s3_public_endpoint,
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


def build_syntax_pool(settings: Settings) -> ProcessPoolExecutor | None:
    """Processes for syntax-only chunks (pure CPU); None when one process is enough."""
    wanted = settings.engine.syntax_processes
    count = (os.cpu_count() or 1) if wanted < 0 else wanted
    if count < 2 and wanted < 0:
        return None  # one CPU: the event loop's own thread is as fast
    if count == 0:
        return None
    # spawn, not fork: this process already runs threads (SQLite driver, file I/O)
    return ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))


async def _shutdown_pool(pool: ProcessPoolExecutor) -> None:
    await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


async def prepare_schema(url: str) -> None:
    """The embedded SQLite database migrates itself; any other must be migrated already
    (`mailvet db upgrade`, the compose file's one-shot migrator)."""
    from mailvet.adapters.db.migrate import current, head, upgrade_async

    if url.startswith("sqlite"):
        await upgrade_async(url)
        return
    found = await asyncio.to_thread(current, url)
    if found != head():
        raise SettingsError(
            f"the database schema is at {found or 'nothing'}, not {head()}: run `mailvet db upgrade`"
        )


def build_engine(settings: Settings, resolver: Resolver, prober: SmtpProberPort) -> Engine:
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
    prober: SmtpProberPort | None = None,
    syntax_pool: Executor | None | bool = True,
) -> Deps:
    """Build every port from settings unless given; `await deps.close()` releases them.

    `syntax_pool`: True builds the process pool from settings; None or False runs syntax
    checks in this process; an Executor is used as given.
    """
    closers: list[Callable[[], Awaitable[Any]]] = []
    if jobs is None:
        from mailvet.adapters.db.database import make_database
        from mailvet.adapters.db.repositories import SqlJobRepository

        await prepare_schema(settings.database)
        database = make_database(settings.database)
        closers.append(database.dispose)
        jobs = SqlJobRepository(database)
    resolver = resolver or DnsResolver(settings.dns)
    prober = prober or SmtpProber(settings.smtp, resolver)
    engine = build_engine(settings, resolver, prober)
    closers.append(engine.close)
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
        jobs=jobs,
        storage=storage or build_storage(settings),
        bus=bus or build_bus(settings),
        resolver=resolver,
        prober=prober,
        engine=engine,
        syntax_pool=pool,
        closers=closers,
    )
