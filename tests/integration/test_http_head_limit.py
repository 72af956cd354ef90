"""The request head bound of mailvet's HTTP protocol (mailvet/http_protocol.py) on a real
uvicorn server (`serve._server`, as `mailvet run` builds it) and raw sockets: heads up to
MAX_HEAD_BYTES are served, a longer one is answered 431 and closed before the app sees it,
however it arrives; bodies, pipelined requests and keep-alive are not hurt by the count."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mailvet.http_protocol import MAX_HEAD_BYTES
from mailvet.serve import _server

pytestmark = pytest.mark.integration


class EchoApp:
    """Answers each request with `<method> <path> <body bytes>`; records the paths seen."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.seen.append(scope["path"])
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        text = f"{scope['method']} {scope['path']} {size}".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(text)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": text})


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, EchoApp]]:
    app = EchoApp()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # a connection made at once waits in the backlog
    port = sock.getsockname()[1]
    server = _server(app, "127.0.0.1", port, health_only=True)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield port, app
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        sock.close()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await asyncio.wait_for(reader.readexactly(length), 30)


def _get(path: str, header_bytes: int = 0) -> bytes:
    """A GET whose head carries `header_bytes` of padding in one header (0: none)."""
    pad = f"x-pad: {'a' * header_bytes}\r\n" if header_bytes else ""
    return f"GET {path} HTTP/1.1\r\nhost: test\r\n{pad}\r\n".encode()


async def test_a_head_just_under_the_limit_is_served(served: tuple[int, EchoApp]) -> None:
    port, app = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = _get("/big", MAX_HEAD_BYTES - 100)
    assert len(request) <= MAX_HEAD_BYTES
    writer.write(request)
    assert await _answer(reader) == (200, b"GET /big 0")
    writer.write(_get("/next"))  # the same connection goes on
    assert await _answer(reader) == (200, b"GET /next 0")
    writer.close()
    assert app.seen == ["/big", "/next"]


@pytest.mark.parametrize("chunk", [10**7, 4096, 1])
async def test_a_head_over_the_limit_is_431_and_closed_however_it_arrives(
    served: tuple[int, EchoApp], chunk: int
) -> None:
    """All at once, in 4-KiB pieces, or byte by byte (for the last 2 KiB before the limit):
    the answer is 431, the connection is closed, and the app never saw the request."""
    port, app = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = _get("/huge", 4 * MAX_HEAD_BYTES)
    if chunk == 1:
        writer.write(request[: MAX_HEAD_BYTES - 2048])
        await writer.drain()
        pieces = [request[i : i + 1] for i in range(MAX_HEAD_BYTES - 2048, len(request))]
    else:
        pieces = [request[i : i + chunk] for i in range(0, len(request), chunk)]
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
    except ConnectionError:  # closed by the server while the client still sends
        pass
    answer = await asyncio.wait_for(reader.read(), 30)  # EOF: the server closed it
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"connection: close" in answer
    assert app.seen == []


async def test_a_long_head_after_a_kept_alive_request_is_refused_too(
    served: tuple[int, EchoApp],
) -> None:
    port, app = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_get("/first"))
    assert await _answer(reader) == (200, b"GET /first 0")
    writer.write(_get("/second", 2 * MAX_HEAD_BYTES))
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert app.seen == ["/first"]


async def test_a_body_far_over_the_limit_is_not_counted_as_head(
    served: tuple[int, EchoApp],
) -> None:
    port, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b"z" * (10 * MAX_HEAD_BYTES)
    head = f"POST /upload HTTP/1.1\r\nhost: test\r\ncontent-length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)  # in one write: the head and the body in one read
    assert await _answer(reader) == (200, f"POST /upload {len(body)}".encode())
    writer.close()


async def test_pipelined_requests_past_the_limit_in_one_write_are_all_served(
    served: tuple[int, EchoApp],
) -> None:
    """Forty requests of 4 KiB heads sent at once: 160 KiB of heads in one read, none of
    them long. Each is answered, in order."""
    port, app = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    paths = [f"/p{i}" for i in range(40)]
    writer.write(b"".join(_get(path, 4096) for path in paths))
    for path in paths:
        assert await _answer(reader) == (200, f"GET {path} 0".encode())
    writer.close()
    assert app.seen == paths
