"""`mailvet run <role>`: one process running one or more roles until SIGTERM.

The five back-end roles are pipeline subscriptions (mailvet.pipeline.runner); `web` is the
Litestar app served by uvicorn. Every process serves `GET /health` and `GET /metrics`
(mailvet.health.health_app, uvicorn) on MAILVET_HEALTH_HOST:MAILVET_HEALTH_PORT, 127.0.0.1:9464
by default (0: off); the web role's public port has only a bare `GET /health`. Both ports
are bound before anything else starts, so a taken one is one error line naming its
variable. On SIGTERM/SIGINT a process stops taking work, lets in-flight handlers finish
(unfinished messages go back to their queue) and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from mailvet import metrics
from mailvet.bootstrap import Deps, build_deps
from mailvet.pipeline.runner import ROLES, Pipeline
from mailvet.settings import Settings, SettingsError

if TYPE_CHECKING:
    import uvicorn

    from mailvet.web.site import Site

log = structlog.get_logger(__name__)

ALL_ROLES = ("web", *ROLES)


def roles_for(name: str) -> tuple[str, ...]:
    if name == "all":
        return ALL_ROLES
    if name not in ALL_ROLES:
        raise SettingsError(f"unknown role {name!r}: choose one of {', '.join(ALL_ROLES)} or all")
    return (name,)


def run(settings: Settings, roles: Sequence[str]) -> None:
    """`serve` on the event loop of a service: uvloop's where it is installed (a dependency
    outside Windows; the API's validate cost 0.77 ms of CPU a request on it, 1.0 ms on
    asyncio's own loop), else asyncio's."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(settings, roles))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # Windows: asyncio's own loop
        return None
    return uvloop.new_event_loop


async def serve(settings: Settings, roles: Sequence[str]) -> None:
    if settings.bus == "memory" and set(ROLES) - set(roles):
        raise SettingsError(
            "MAILVET_BUS=memory keeps messages inside one process: use `mailvet run all`, "
            "or MAILVET_BUS=rabbit to run roles separately"
        )
    if "web" in roles:
        from mailvet.web.context import resolve_secret_key

        # outside the embedded default without MAILVET_SECRET_KEY: refused before any port
        resolve_secret_key(settings)
    listening = listen(settings, roles)  # a taken port fails before any connection is made
    metrics.enable()  # count from the start; served on /metrics
    try:
        deps = await build_deps(settings)
    except BaseException:
        _close(listening)
        raise
    site: Site | None = None
    if "web" in roles:
        from mailvet.web.site import build_site

        try:
            site = await build_site(deps, roles=roles)  # the SaaS: pages, outbox, housekeeping
        except BaseException:
            _close(listening)
            await deps.close()
            raise
    back_end = [role for role in roles if role in ROLES]
    pipeline = Pipeline(deps, back_end)
    await pipeline.start()
    tune_gc()
    log.info("service_started", roles=list(roles))
    stop = asyncio.Event()
    servers = http_servers(deps, settings, roles, web_app=site.app if site else None)
    running = [
        asyncio.create_task(server.serve(sockets=[listening[server.config.port]]))
        for server in servers
    ]
    sharing = contextlib.ExitStack()
    if servers:  # both ports' /health: one probe a second at most (mailvet.health)
        from mailvet.health import shared_answers

        sharing.enter_context(shared_answers(deps))
    try:
        _on_signals(stop.set)
        stopping = asyncio.ensure_future(stop.wait())
        # a server that cannot start (port taken) ends the process too
        await asyncio.wait({stopping, *running}, return_when="FIRST_COMPLETED")
        stopping.cancel()
        log.info("service_stopping", roles=list(roles))
    finally:
        for server in servers:
            server.should_exit = True  # stop listening, finish open requests
        await asyncio.gather(*running, return_exceptions=True)
        await pipeline.stop()
        sharing.close()
        if site is not None:
            await site.close()
        await deps.close()
        log.info("service_stopped", roles=list(roles))


# the collector's thresholds of a running process (Python's defaults: 700, 10, 10)
GC_THRESHOLDS = (20_000, 50, 100)


def tune_gc() -> None:
    """Once everything is built: the objects made so far (the app, its routes, the ORM's
    mappings: hundreds of thousands) are moved out of the collector's sight (gc.freeze),
    and young objects are collected less often (GC_THRESHOLDS). Without it a full
    collection walked them all now and then mid-request: the API's p99 under load was
    133 ms instead of 52 (freeze), 47 with the thresholds (issue 9 §4 bench)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _on_signals(callback: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, callback)


def listen(settings: Settings, roles: Sequence[str]) -> dict[int, socket.socket]:
    """The listening sockets of `http_servers` (by port), bound now; a port that cannot be
    bound is a SettingsError naming its variable."""
    wanted = []
    if "web" in roles:
        wanted.append(("MAILVET_WEB_PORT", settings.web_host, settings.web_port))
    if settings.health_port:
        wanted.append(("MAILVET_HEALTH_PORT", settings.health_host, settings.health_port))
    bound: dict[int, socket.socket] = {}
    for variable, host, port in wanted:
        try:
            bound[port] = _bind(host, port)
        except OSError as exc:
            _close(bound)
            what = exc.strerror or type(exc).__name__
            raise SettingsError(
                f"{variable}={port}: cannot listen on {host}:{port} ({what}); "
                f"choose another port{', or 0 to serve no /health' if 'HEALTH' in variable else ''}"
            ) from None
    return bound


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def _close(sockets: dict[int, socket.socket]) -> None:
    for sock in sockets.values():
        sock.close()


def http_servers(
    deps: Deps, settings: Settings, roles: Sequence[str], *, web_app: Any = None
) -> list[uvicorn.Server]:
    """The web app (web role: `web_app`, the SaaS of web/site.py; without it the job API
    alone) and the health/metrics app (MAILVET_HEALTH_PORT not 0)."""
    servers = []
    if "web" in roles:
        from mailvet.web.app import create_app

        app: Any = web_app if web_app is not None else create_app(deps, roles=roles)
        servers.append(_server(app, settings.web_host, settings.web_port, health_only=False))
    if settings.health_port:
        from mailvet.health import health_app

        app = health_app(deps, roles)
        servers.append(_server(app, settings.health_host, settings.health_port, health_only=True))
    return servers


def _server(app: Any, host: str, port: int, *, health_only: bool) -> uvicorn.Server:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn without its own signal handling: this process stops the pipeline too."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    # log_config=None: uvicorn's loggers go to the root logger, as JSON lines (mailvet.logs).
    # uvicorn's access line holds the query string (a reset link's token) and the client's
    # IP: off; the web app logs its own line without either (web/access_log.py). The health
    # app has no lifespan, and its probes are not worth an access line each.
    if not health_only:
        from mailvet.web.access_log import AccessLog

        app = AccessLog(app)
    from mailvet.http_protocol import protocol_class

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_class(),  # httptools, with a bounded request head
        log_config=None,
        access_log=False,
        lifespan="off" if health_only else "auto",
    )
    return Server(config)
