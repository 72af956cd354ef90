"""Dependency injection: the ports of `Deps`, handed to controllers by name.

Handlers ask for `jobs`, `storage`, `bus` or `settings` with the annotated types below; the
values are the composition root's objects, passed through without validation (they are
ports, not request data).
"""

from __future__ import annotations

from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation

from mailvet.bootstrap import Deps
from mailvet.domain.ports import JobRepository, MessageBus, ObjectStorage
from mailvet.settings import Settings

Jobs = NamedDependency[SkipValidation[JobRepository]]
Storage = NamedDependency[SkipValidation[ObjectStorage]]
Bus = NamedDependency[SkipValidation[MessageBus]]
AppSettings = NamedDependency[SkipValidation[Settings]]


def provide_ports(deps: Deps) -> dict[str, Provide]:
    """One provider per port, each returning the object the caller built."""

    def jobs() -> JobRepository:
        return deps.jobs

    def storage() -> ObjectStorage:
        return deps.storage

    def bus() -> MessageBus:
        return deps.bus

    def settings() -> Settings:
        return deps.settings

    return {
        "jobs": Provide(jobs, sync_to_thread=False),
        "storage": Provide(storage, sync_to_thread=False),
        "bus": Provide(bus, sync_to_thread=False),
        "settings": Provide(settings, sync_to_thread=False),
    }
