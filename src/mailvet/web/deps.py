"""Dependency injection: the ports of `Deps`, handed to controllers by name.

Handlers ask for `jobs`, `storage`, `bus`, `settings` or `dns_resolver` with the annotated
types below, and in the SaaS for `web` and `engine` (`Web`/`EngineDep`, in web/context.py);
the values are the composition root's objects, passed through without validation (they are
ports, not request data).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation

from mailvet.bootstrap import Deps
from mailvet.domain.ports import JobRepository, MessageBus, ObjectStorage, Resolver
from mailvet.settings import Settings
from mailvet.web.context import WebContext

Jobs = NamedDependency[SkipValidation[JobRepository]]
Storage = NamedDependency[SkipValidation[ObjectStorage]]
Bus = NamedDependency[SkipValidation[MessageBus]]
AppSettings = NamedDependency[SkipValidation[Settings]]
DnsResolver = NamedDependency[SkipValidation[Resolver]]


def provide_ports(deps: Deps, web: WebContext | None = None) -> dict[str, Provide]:
    """One provider per port, each returning the object the caller built; with `web` (the
    SaaS) the web context and the pipeline's engine too."""
    providers: dict[str, Callable[[], Any]] = {
        "jobs": lambda: deps.jobs,
        "storage": lambda: deps.storage,
        "bus": lambda: deps.bus,
        "settings": lambda: deps.settings,
        "dns_resolver": lambda: deps.resolver,
    }
    if web is not None:
        providers |= {"web": lambda: web, "engine": lambda: deps.engine}
    return {name: Provide(get, sync_to_thread=False) for name, get in providers.items()}
