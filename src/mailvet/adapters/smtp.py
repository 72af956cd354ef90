"""The SmtpProber port: mailbox probes grouped per MX host, over few, reused connections.

For each MX host a `HostPool` keeps a queue of recipients waiting to be asked. Up to
`per_host_connections` sessions per host (and `max_connections` in all) take batches of
recipients from the queue, one transaction per batch (pipelined when the server offers it),
so thousands of addresses on one domain cost a few connections and one round trip per batch.

- A host that cannot be reached (refused, timeout, 421 or 5xx greeting) is remembered as
  down for a while; its waiting recipients move on to the next MX of their domain.
- `452 4.5.3` too many recipients: the batch size for that host shrinks and the rest go again.
- 4xx (greylisting): the recipient is asked again after `retry_delay`, at most `retries`
  times, on a new session, while everything else goes on; then its last reply stands.
- A session lost mid-transaction puts its batch back (counting a try).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence

import structlog

from mailvet.adapters.smtp_session import (
    BadReply,
    SessionError,
    SessionRefused,
    SessionTimeout,
    SmtpSession,
)
from mailvet.domain.ports import ProbeFailure, ProbeResult, Resolver
from mailvet.domain.smtp_reply import Outcome, classify_rcpt
from mailvet.settings import SmtpSettings

log = structlog.get_logger(__name__)

HOST_DOWN_SECONDS = 300.0


class _Request:
    __slots__ = ("future", "recipient", "tries")

    def __init__(self, recipient: str, future: asyncio.Future[ProbeResult]) -> None:
        self.recipient = recipient
        self.future = future
        self.tries = 0


class _HostDown(Exception):
    def __init__(self, failure: ProbeFailure) -> None:
        self.failure = failure


class HostPool:
    """Probes for one MX host."""

    def __init__(self, host: str, prober: SmtpProber) -> None:
        self.host = host
        self._prober = prober
        self._settings = prober.settings
        self._queue: deque[_Request] = deque()
        self._sessions = 0  # session tasks, connected or connecting
        self._cap = self._settings.per_host_connections
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self.batch_size = self._settings.recipients_per_transaction

    def submit(self, recipients: Sequence[str]) -> list[asyncio.Future[ProbeResult]]:
        loop = asyncio.get_running_loop()
        futures = []
        for recipient in recipients:
            future: asyncio.Future[ProbeResult] = loop.create_future()
            self._queue.append(_Request(recipient, future))
            futures.append(future)
        self._spawn()
        return futures

    def _spawn(self) -> None:
        down = self._prober.down_failure(self.host)
        if down is not None:
            self._fail_all(down)
            return
        wanted = min(len(self._queue), self._cap) - self._sessions
        for _ in range(max(0, wanted)):
            self._sessions += 1
            task = asyncio.create_task(self._run_session())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _fail_all(self, failure: ProbeFailure) -> None:
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_result(ProbeResult(mx=self.host, failure=failure))

    def _resolve(self, request: _Request, result: ProbeResult) -> None:
        if not request.future.done():
            request.future.set_result(result)

    def _retry_later(self, request: _Request, result: ProbeResult) -> None:
        """A temporary answer: ask again after the delay, or let this answer stand."""
        if request.tries >= self._settings.retries:
            self._resolve(request, result)
            return
        request.tries += 1
        handle = asyncio.get_running_loop().call_later(
            self._settings.retry_delay, self._requeue, request
        )
        self._timers.add(handle)

    def _requeue(self, request: _Request) -> None:
        if request.future.done():
            return
        self._queue.append(request)
        self._spawn()

    def _take_batch(self) -> list[_Request]:
        batch: list[_Request] = []
        while self._queue and len(batch) < self.batch_size:
            request = self._queue.popleft()
            if not request.future.done():
                batch.append(request)
        return batch

    async def _run_session(self) -> None:
        session: SmtpSession | None = None
        batch: list[_Request] = []
        try:
            async with self._prober.connection_slot():
                session = await self._prober.connect(self.host)
                while True:
                    batch = self._take_batch()
                    if not batch:
                        return
                    alive = await self._transaction(session, batch)
                    batch = []
                    if not alive:
                        return
        except _HostDown as down:
            if self._sessions > 1:
                # other sessions to this host are open or opening: it may only want fewer
                # connections (421 too many connections); the last one to fail decides
                self._cap = max(1, self._sessions - 1)
                log.info("mx_connection_cap_lowered", host=self.host, cap=self._cap)
                for request in batch:
                    self._queue.appendleft(request)
                return
            self._prober.mark_down(self.host, down.failure)
            for request in batch:
                self._queue.appendleft(request)
            self._fail_all(down.failure)
        except SessionError as exc:
            failure = ProbeFailure.TIMEOUT if isinstance(exc, SessionTimeout) else (
                ProbeFailure.SMTP_ERROR if isinstance(exc, BadReply) else ProbeFailure.CONNECTION_FAILED
            )
            log.debug("smtp_session_lost", host=self.host, error=str(exc))
            for request in batch:
                self._retry_later(request, ProbeResult(mx=self.host, failure=failure))
        finally:
            self._sessions -= 1
            if session is not None:
                await session.close()
            if self._queue:
                self._spawn()

    async def _transaction(self, session: SmtpSession, batch: list[_Request]) -> bool:
        """Run one transaction; returns whether the session can go on."""
        tx = await session.transaction(
            self._settings.mail_from, [request.recipient for request in batch]
        )
        if tx.mail.code >= 400:
            result = ProbeResult(mx=self.host, reply=tx.mail, failure=ProbeFailure.SMTP_ERROR)
            for request in batch:
                if tx.mail.code < 500:
                    self._retry_later(request, result)
                else:
                    self._resolve(request, result)
            return tx.alive and tx.mail.code != 421
        accepted_in_tx = 0
        for index, request in enumerate(batch):
            if index >= len(tx.rcpts):  # the server ended the session part-way
                if index == len(tx.rcpts):  # the one it refused to answer counts a try
                    self._retry_later(
                        request, ProbeResult(mx=self.host, failure=ProbeFailure.CONNECTION_FAILED)
                    )
                else:
                    self._queue.appendleft(request)
                continue
            reply = tx.rcpts[index]
            outcome = classify_rcpt(reply)
            if outcome is Outcome.TOO_MANY_RECIPIENTS and accepted_in_tx > 0:
                self.batch_size = accepted_in_tx
                self._queue.appendleft(request)
            elif outcome in (Outcome.TEMPORARY, Outcome.TOO_MANY_RECIPIENTS):
                self._retry_later(request, ProbeResult(mx=self.host, reply=reply))
            else:
                accepted_in_tx += 1
                self._resolve(request, ProbeResult(mx=self.host, reply=reply))
        return tx.alive

    async def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_all(ProbeFailure.CONNECTION_FAILED)


class SmtpProber:
    """The SmtpProber port over real sockets."""

    def __init__(self, settings: SmtpSettings, resolver: Resolver) -> None:
        self.settings = settings
        self._resolver = resolver
        self._pools: dict[str, HostPool] = {}
        self._down: dict[str, tuple[ProbeFailure, float]] = {}
        self._slots = asyncio.Semaphore(settings.max_connections)

    def connection_slot(self) -> asyncio.Semaphore:
        return self._slots

    def down_failure(self, host: str) -> ProbeFailure | None:
        entry = self._down.get(host)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            del self._down[host]
            return None
        return entry[0]

    def mark_down(self, host: str, failure: ProbeFailure) -> None:
        self._down[host] = (failure, time.monotonic() + HOST_DOWN_SECONDS)
        log.info("mx_down", host=host, failure=failure.value)

    async def connect(self, host: str) -> SmtpSession:
        """Open a session to the first reachable address of `host`, or raise _HostDown."""
        addresses = await self._resolver.host_addresses(host)
        if not addresses:
            raise _HostDown(ProbeFailure.CONNECTION_FAILED)
        failure = ProbeFailure.CONNECTION_FAILED
        for address in addresses:
            try:
                return await SmtpSession.open(
                    address, self.settings.port, self.settings.helo_name, self.settings.timeout
                )
            except SessionRefused as exc:
                log.debug("smtp_refused", host=host, reply=str(exc))
                failure = ProbeFailure.CONNECTION_FAILED
            except SessionTimeout:
                failure = ProbeFailure.TIMEOUT
            except SessionError as exc:
                log.debug("smtp_connect_failed", host=host, error=str(exc))
                failure = ProbeFailure.CONNECTION_FAILED
        raise _HostDown(failure)

    def _pool(self, host: str) -> HostPool:
        pool = self._pools.get(host)
        if pool is None:
            pool = self._pools[host] = HostPool(host, self)
        return pool

    async def probe(self, hosts: Sequence[str], recipients: Sequence[str]) -> list[ProbeResult]:
        results: list[ProbeResult | None] = [None] * len(recipients)
        pending = list(range(len(recipients)))
        last = ProbeResult(failure=ProbeFailure.CONNECTION_FAILED)
        for host in hosts:
            if not pending:
                break
            futures = self._pool(host).submit([recipients[i] for i in pending])
            outcomes = await asyncio.gather(*futures)
            still: list[int] = []
            for index, outcome in zip(pending, outcomes, strict=True):
                if outcome.reply is None and outcome.failure in (
                    ProbeFailure.CONNECTION_FAILED,
                    ProbeFailure.TIMEOUT,
                ):
                    still.append(index)  # this host could not be asked: try the next MX
                    last = outcome
                else:
                    results[index] = outcome
            pending = still
        for index in pending:
            results[index] = last
        return [result for result in results if result is not None]

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self._pools.values()))
        self._pools.clear()
