"""The sockets `mailvet run` binds itself (serve.listen) are TCP sockets as asyncio knows
them, so the connections they accept get TCP_NODELAY: without it a response written in two
pieces (head, then body) waits for the client's delayed ACK, about 40 ms an answer on a
keep-alive connection (the web port answered 730 requests/s at 44 ms each instead of
4,000). And the collector's set-up of a running process (serve.tune_gc)."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Sequence
from pathlib import Path

import pytest

from mailvet import serve
from mailvet.settings import Settings, load_settings

pytestmark = pytest.mark.unit


async def test_an_accepted_connection_of_a_bound_port_has_nodelay() -> None:
    listening = serve._bind("127.0.0.1", 0)
    port = listening.getsockname()[1]
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Accept, sock=listening)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await asyncio.wait_for(accepted, 10) != 0
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


def test_a_running_process_freezes_what_it_built_and_collects_less_often() -> None:
    before = gc.get_threshold()
    try:
        built = [[n] for n in range(1000)]  # containers: tracked by the collector
        serve.tune_gc()
        assert gc.get_freeze_count() >= len(built)
        # young objects collected at least ten times less often than by CPython's default
        # (700; `before` may be another test's or library's setting)
        assert gc.get_threshold()[0] >= 10 * 700
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_services_run_on_uvloop_where_it_is_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`serve.run` (what `mailvet run` calls) runs the roles on uvloop's loop."""
    import uvloop

    loops: list[type[asyncio.AbstractEventLoop]] = []

    async def roles_on(settings: Settings, roles: Sequence[str]) -> None:
        loops.append(type(asyncio.get_running_loop()))

    monkeypatch.setattr(serve, "serve", roles_on)
    serve.run(load_settings({"MAILVET_DATA_DIR": str(tmp_path)}), ["web"])
    assert loops == [uvloop.Loop]
