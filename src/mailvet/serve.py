"""`mailvet run <role>`: one process running one or more roles until SIGTERM.

The five back-end roles are pipeline subscriptions (mailvet.pipeline.runner); `web` is the
Litestar app served by uvicorn. Every process answers a health check: the web role on its
own port (`/health`), the others on MAILVET_HEALTH_PORT when it is set. On SIGTERM/SIGINT a
process stops taking work, lets in-flight handlers finish (unfinished messages go back to
their queue) and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import msgspec
import structlog

from mailvet.bootstrap import Deps, build_deps
from mailvet.pipeline.runner import ROLES, Pipeline
from mailvet.settings import Settings, SettingsError

if TYPE_CHECKING:
    import uvicorn

log = structlog.get_logger(__name__)

ALL_ROLES = ("web", *ROLES)


def roles_for(name: str) -> tuple[str, ...]:
    if name == "all":
        return ALL_ROLES
    if name not in ALL_ROLES:
        raise SettingsError(f"unknown role {name!r}: choose one of {', '.join(ALL_ROLES)} or all")
    return (name,)


async def serve(settings: Settings, roles: Sequence[str]) -> None:
    if settings.bus == "memory" and set(ROLES) - set(roles):
        raise SettingsError(
            "MAILVET_BUS=memory keeps messages inside one process: use `mailvet run all`, "
            "or MAILVET_BUS=rabbit to run roles separately"
        )
    deps = await build_deps(settings)
    back_end = [role for role in roles if role in ROLES]
    pipeline = Pipeline(deps, back_end)
    await pipeline.start()
    log.info("service_started", roles=list(roles))
    stop = asyncio.Event()
    health: asyncio.Server | None = None
    web: asyncio.Task[None] | None = None
    try:
        _on_signals(stop.set)
        if "web" in roles:
            server = _web_server(deps, settings)
            web = asyncio.create_task(server.serve())
            await asyncio.wait({web, asyncio.ensure_future(stop.wait())}, return_when="FIRST_COMPLETED")
            server.should_exit = True  # stop listening, finish open requests
            await web
        else:
            if settings.health_port:
                health = await _health_server(deps, roles, settings.health_port)
            await stop.wait()
        log.info("service_stopping", roles=list(roles))
    finally:
        if health is not None:
            health.close()
            await health.wait_closed()
        await pipeline.stop()
        await deps.close()
        log.info("service_stopped", roles=list(roles))


def _on_signals(callback: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, callback)


async def healthy(deps: Deps) -> bool:
    ping: Callable[[], Awaitable[bool]] | None = getattr(deps.bus, "ping", None)
    return True if ping is None else await ping()


async def _health_server(deps: Deps, roles: Sequence[str], port: int) -> asyncio.Server:
    """A minimal HTTP/1.1 endpoint: any GET answers 200 (or 503 when the bus is down)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            ok = await healthy(deps)
            body = msgspec.json.encode({"status": "ok" if ok else "unavailable", "roles": list(roles)})
            head = f"HTTP/1.1 {'200 OK' if ok else '503 Service Unavailable'}\r\n"
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "0.0.0.0", port)


def _web_server(deps: Deps, settings: Settings) -> uvicorn.Server:
    import uvicorn

    from mailvet.web.app import create_app

    class Server(uvicorn.Server):
        """uvicorn without its own signal handling: this process stops the pipeline too."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        create_app(deps), host=settings.web_host, port=settings.web_port, log_config=None
    )
    return Server(config)
