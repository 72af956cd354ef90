"""The stalled upload against a real uvicorn server and a raw socket: the server answers 408
and closes the connection by itself, and the partial file is gone (issue 7 §4)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from mailvet.serve import _server
from mailvet.web.app import create_app
from tests.web.test_jobs_api import scratch_files
from tests.web.test_upload_guards import IDLE, guarded_deps

pytestmark = pytest.mark.pipeline


async def test_a_stalled_upload_over_a_socket_is_answered_408_and_closed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    deps = await guarded_deps(data_dir)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _server(create_app(deps), "127.0.0.1", port, health_only=False)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # uvicorn's own flag, set once it listens
            await asyncio.sleep(0)
            if serving.done():
                serving.result()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            "POST /api/jobs HTTP/1.1\r\nHost: test\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 100000\r\n\r\n"
        )
        body = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="l.csv"\r\n\r\n'
        writer.write(head.encode() + body + b"email\n" + b"a@example.com\n" * 100)
        await writer.drain()  # ...and nothing more: the client stalls, it never hangs up
        answer = await asyncio.wait_for(reader.read(), 30)  # EOF: the server closed it
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert f"nothing received for {IDLE:g} s".encode() in answer
        assert scratch_files(data_dir) == []
        assert await deps.jobs.list_jobs() == []
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        await deps.close()
