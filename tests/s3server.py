"""An in-process S3 (moto's server) for tests, that can be taken away and brought back.

    with MotoS3() as s3:
        storage = S3Storage(s3.endpoint, s3.access_key, s3.secret_key, "my-bucket")
        ...
        s3.stop()    # S3 is gone: new connections are refused, open ones are dropped
        s3.start()   # back on the same port, with the same objects

Or as a pytest fixture: `yield from MotoS3().serve()`.

moto keeps its state in process-wide backends: every MotoS3 in one process sees the same
buckets (use a bucket per test), state survives stop()/start(), and `reset()` wipes it for
all of them.
"""

from __future__ import annotations

import errno
import socket
import struct
import threading
import urllib.request
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

HOST = "127.0.0.1"
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s


class MotoS3:
    access_key = "testing"
    secret_key = "testing"
    region = "us-east-1"

    def __init__(self, port: int = 0) -> None:
        self.port = port  # 0: any free port, fixed after the first start()
        self._server: _CrashableMotoServer | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving (again). A restart reuses the port of the first start."""
        if self._server is not None:
            raise RuntimeError("MotoS3 is already running")
        if self.port:
            _check_port_free(self.port)  # werkzeug would sys.exit() in its thread and hang us
        server = _CrashableMotoServer(ip_address=HOST, port=self.port, verbose=False)
        server.start()
        self.port = server.get_host_and_port()[1]
        self._server = server
        return self

    def stop(self) -> None:
        """Stop like a crashed S3: new connections are refused, requests in flight are reset.

        (ThreadedMotoServer.stop() alone would let requests in flight finish. werkzeug closes
        every connection after one response: there are no idle keep-alive ones to drop.)
        """
        server, self._server = self._server, None
        if server is not None:
            server.crash()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def connections(self) -> int:
        """Connections accepted since the last start (a test can see a request arrive)."""
        return 0 if self._server is None else self._server.accepted

    def serve(self) -> Iterator[Self]:
        """For fixtures: start, yield self, stop."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses and state -----------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """`host:port`, what the minio client takes."""
        if not self.port:
            raise RuntimeError("MotoS3 has not been started")
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def reset(self) -> None:
        """Wipe every bucket and object (moto's state is process-wide)."""
        # S310: the URL is our own local server's, http by construction
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()


def _check_port_free(port: int) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((HOST, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise RuntimeError(f"cannot restart MotoS3: port {port} is taken") from exc
        raise
    finally:
        probe.close()


class _CrashableMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer that knows its client connections, so it can reset them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.accepted = 0

    def crash(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # stop accepting; the listening socket closes next
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                # an abortive close, as when a process dies: RST, not FIN (a FIN left clients
                # that were sending a body blocked until their timeout)
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                connection.shutdown(socket.SHUT_RDWR)  # wakes the handler, whose close resets
            except OSError:
                pass
        self.stop()  # closes the listening socket, joins the handler threads

    def _server_entry(self) -> None:
        # moto's own _server_entry, with a handler that registers its connection
        connections, lock, server = self._connections, self._lock, self

        class TrackingHandler(MotoRequestHandler):
            def setup(self) -> None:
                super().setup()
                with lock:
                    connections.add(self.connection)
                    server.accepted += 1

            def finish(self) -> None:
                with lock:
                    connections.discard(self.connection)
                super().finish()

            def log_request(self, *args: object, **kwargs: object) -> None:
                pass  # no line per request on stderr

        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=TrackingHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever(poll_interval=0.05)  # stop() waits up to one interval
