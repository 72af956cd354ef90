"""Timers of the SMTP adapter: a big job's hundred thousand RCPTs must not cost a timer each.

A pipelined transaction's replies mostly arrive in one segment: the session reads buffered
lines without arming a timeout, and a probe call waits for all its recipients under one
timer (each reply and each recipient keep their own time limit all the same).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any, cast

import pytest

from mailvet.adapters.smtp import _Request, _wait
from mailvet.adapters.smtp_session import SessionTimeout, SmtpSession, buffered
from mailvet.domain.ports import ProbeFailure, ProbeResult

pytestmark = pytest.mark.unit


@contextmanager
def counted_timers() -> Iterator[list[float]]:
    """Every `call_at` of the running loop (asyncio.timeout and call_later use it)."""
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    original = loop.call_at

    def call_at(when: float, callback: Callable[..., object], *args: Any, **kw: Any) -> Any:
        armed.append(when)
        return original(when, callback, *args, **kw)

    loop.call_at = call_at  # type: ignore[method-assign,assignment]
    try:
        yield armed
    finally:
        del loop.call_at  # the class's method again


def fed_session(data: bytes, *, eof: bool = True, timeout: float = 1.0) -> SmtpSession:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return SmtpSession(reader, cast(asyncio.StreamWriter, None), timeout)


async def test_buffered_replies_are_read_without_a_timer() -> None:
    wire = b"".join(b"250 2.1.5 OK %d\r\n" % n for n in range(100)) + b"550-5.1.1 no\r\n550 x\r\n"
    session = fed_session(wire)
    with counted_timers() as armed:
        replies = [await session.read_reply() for _ in range(101)]
    assert armed == []
    assert [r.code for r in replies] == [250] * 100 + [550]
    assert replies[42].text == "OK 42"


async def test_a_reply_not_here_yet_still_has_its_timeout() -> None:
    session = fed_session(b"250 OK\r\n250-first line\r\n", eof=False, timeout=0.05)
    with counted_timers() as armed:
        assert (await session.read_reply()).code == 250
        started = time.monotonic()
        with pytest.raises(SessionTimeout):
            await session.read_reply()  # its second line never comes
    assert len(armed) == 1 and time.monotonic() - started < 1.0


def _requests(count: int, deadline: float) -> list[_Request]:
    loop = asyncio.get_running_loop()
    pool = SimpleNamespace(progress_at=-math.inf)  # a server that never answered
    return [
        cast(
            _Request,
            SimpleNamespace(future=loop.create_future(), deadline=deadline, host="mx", pool=pool),
        )
        for _ in range(count)
    ]


async def test_a_probe_call_waits_under_one_timer() -> None:
    requests = _requests(50, time.monotonic() + 60)
    with counted_timers() as armed:
        waiting = asyncio.ensure_future(_wait(requests, 60.0))
        await asyncio.sleep(0)  # (let it arm its timer; nothing else to wait for)
        for n, request in enumerate(requests):
            request.future.set_result(ProbeResult(mx=f"answer {n}"))
        await waiting
    assert len(armed) == 1


async def test_each_request_still_times_out_at_its_own_deadline() -> None:
    now = time.monotonic()
    late, soon = _requests(3, now + 60), _requests(3, now + 0.05)
    pushed = soon[0]
    pushed.pool = cast(Any, SimpleNamespace(progress_at=now + 0.02))  # its server answers others
    waiting = asyncio.ensure_future(_wait([*late, *soon], 0.1))
    await asyncio.wait_for(asyncio.gather(*(r.future for r in soon[1:])), 5)
    assert all(r.future.result().failure is ProbeFailure.TIMEOUT for r in soon[1:])
    assert not pushed.future.done()  # pushed back to progress_at + 0.1
    assert not any(r.future.done() for r in late)
    await asyncio.wait_for(pushed.future, 5)
    assert pushed.future.result().failure is ProbeFailure.TIMEOUT
    for request in late:
        request.future.set_result(ProbeResult(mx="answered"))
    await waiting


async def test_a_cancelled_wait_leaves_no_request_waiting() -> None:
    requests = _requests(5, time.monotonic() + 60)
    waiting = asyncio.ensure_future(_wait(requests, 60.0))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert all(request.future.cancelled() for request in requests)  # the pool skips them


async def test_the_private_stream_buffer_is_still_where_the_session_reads_it() -> None:
    # smtp_session.buffered reads StreamReader._buffer: a Python that renames it would
    # silently switch off the STARTTLS injection check and the untimed buffered lines
    reader = asyncio.StreamReader()
    assert isinstance(getattr(reader, "_buffer", None), bytearray)
    assert buffered(reader) == b""
    reader.feed_data(b"250-first\r\n250 second\r\n")
    assert buffered(reader) == b"250-first\r\n250 second\r\n"
    assert await reader.readline() == b"250-first\r\n"
    assert buffered(reader) == b"250 second\r\n"
