"""The HTTP/1.1 protocol every mailvet server speaks (the web role and the health port):
uvicorn's httptools protocol, with a bound on the size of a request's head.

httptools (llhttp, in C) parses a request for a fraction of the CPU of h11's pure Python:
`bench/api_bench.py` measured 494 us of server CPU a validate request against 593 us on
h11, and 1,986 validate requests/s against 1,675 (bare /health: 5,565 against 3,883).

llhttp has no limit of its own on a request line or a header: it keeps what it has of one
until its end, so a client sending a header without end could make the process hold any
amount of memory. `BoundedHttpToolsProtocol` counts the bytes of the head in progress (the
request line and the headers, up to the blank line) and answers a head longer than
`MAX_HEAD_BYTES` with 431 and closes the connection, before any of it reaches the app. The
count starts when the request before has ended, so a head that begins in the same read as
that end is held up to MAX_HEAD_BYTES plus that one read of the event loop's buffer:
bounded. The body is not counted: the app bounds it (the upload limit of
web/jobs/upload.py, Litestar's request body limit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

MAX_HEAD_BYTES = 64 * 1024
"""The largest request head taken: 64 KiB, four times h11's default and Node's 16 KiB, far
above any browser's (cookies included) or any API client's."""

# after a 431: how long, and how many bytes, the refused client's rest is read and dropped
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024

_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 32\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"Request header fields too large."
)


def protocol_class() -> type[asyncio.Protocol]:
    """The protocol class for `uvicorn.Config(http=...)`; imported when a server starts,
    never by the CLI's other commands."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol refusing a head over MAX_HEAD_BYTES with 431."""

        _in_head = True  # the next bytes belong to a request's head
        _head_bytes = 0  # how many of them were read
        _heads = 0  # heads read whole on this connection
        _lingering = False  # refused: what comes is dropped until the connection closes
        _dropped = 0

        def data_received(self, data: bytes) -> None:
            if self._lingering:
                self._linger(data)
                return
            if not self._in_head:  # a body: the app bounds it
                super().data_received(data)
                return
            room = MAX_HEAD_BYTES - self._head_bytes
            first, rest = data[:room], data[room:]
            self._head_bytes += len(first)
            heads = self._heads
            super().data_received(first)
            if not rest or self.transport.is_closing():
                return
            if self._heads == heads:  # MAX_HEAD_BYTES read and the head still goes on
                self._refuse()
                return
            self.data_received(rest)  # the body, or the next pipelined request

        def _refuse(self) -> None:
            """431, then a lingering close: the answer and a FIN go out at once, and what
            the client still sends is read and dropped (for LINGER_SECONDS, up to
            LINGER_BYTES) so that closing does not reset the connection before the client
            has read the answer."""
            self.transport.write(_REFUSAL)
            self._in_head, self._lingering = False, True
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)

        def _linger(self, data: bytes) -> None:
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.close()

        def on_headers_complete(self) -> None:
            self._in_head, self._heads = False, self._heads + 1
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._head_bytes = True, 0

    return BoundedHttpToolsProtocol
