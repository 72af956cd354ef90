"""Serve an ASGI app on 127.0.0.1 (an ephemeral port) from a thread of its own, for the fake
peers of the tests (OpenID provider, reCAPTCHA siteverify): any test's event loop, a browser
or another process can reach it, and a session-scoped fixture pays uvicorn's start and stop
(about 0.2 s) once."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers (the test runner keeps its own)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def serving(make_app: Callable[[str], Any]) -> Iterator[str]:
    """Serve `make_app(base_url)` until the block ends; yields the base URL
    (http://127.0.0.1:PORT). The socket listens before the thread starts, so a request
    sent at once waits in the backlog instead of being refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(make_app(base_url), log_config=None, access_log=False)
        server = _Server(config)
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as error:  # raised again in the test's thread
                failure.append(error)

        thread = threading.Thread(target=serve, name=f"serving {base_url}", daemon=True)
        thread.start()
        try:
            yield base_url
        finally:
            server.should_exit = True
            thread.join(30)
        if failure:
            raise failure[0]


@contextlib.contextmanager
def silent_port() -> Iterator[str]:
    """A base URL whose socket takes connections (the kernel's backlog) and never answers:
    a peer that hangs, to drive a client's timeout without a sleep anywhere."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def closed_port() -> str:
    """A base URL nobody listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
