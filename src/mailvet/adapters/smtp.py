"""The SmtpProber port: mailbox probes grouped per mail *server address*, over few sessions.

Politeness is per IP address, not per MX host name: many domains name their own MX host
that resolves to one shared provider server. For each server address a `ServerPool` keeps
a queue of recipients; up to `per_host_connections` sessions to that address (and
`max_connections` in all) take batches from it, one transaction per batch, pipelined when
the server offers it.

- Safety: an MX address that is not globally routable (loopback, private, link-local,
  multicast, reserved; IPv4-mapped IPv6 included: domain/network.py) is never contacted unless
  `allow_private` is set; such a domain ends `connection_failed`.
- Bounded time: at most `max_mx_hosts` MX hosts per domain, each address's attempt ends at
  `address_deadline` (retries after a temporary answer start a new attempt; time spent
  queued behind other recipients of a server that keeps answering does not count).
- Sessions: only as many as the queued batches need, at most the server's cap, opened one
  at a time beyond the most the server has already taken at once (slow start: a server
  whose cap is below ours turns away one connection, not a burst). A `421` at the greeting
  while other sessions are open lowers the cap (too many connections) and puts the work
  back; a `421`/4xx greeting on the only session is retried after `retry_delay`,
  like greylisting. Refused or timed-out connections mark the address down for a while, and
  its recipients move on to the next MX.
- Batches start at `recipients_per_transaction` and double after each transaction the
  server took whole, up to `max_recipients_per_transaction` (RFC 5321 requires 100); `452
  4.5.3` sets the batch to what the server took (every RCPT it answered before the 452,
  greylisting 450s included); a server that drops us after N refusals
  (Postfix's error limit) gets at most N-1 refusals per session afterwards.
- Controls: the first transaction of a session for a domain also asks `postmaster@domain`;
  its reply travels with each result (see domain/evidence.py).
- Catch-all probes (`solo=True`) run in a transaction of their own, before queued recipients
  (though not two in a row while recipients wait). With PIPELINING one write (a round)
  carries a catch-all probe's transaction, the next batch's, and more catch-all probes'
  while the round holds fewer RCPTs than a batch (`_take_round`).
- Fairness: each job (domain/work.py `current_job`) has its own queue at a server, and the
  sessions take a batch from each job in turn.
- 4xx (greylisting): asked again after `retry_delay`, at most `retries` times.
- A garbled reply makes that recipient `smtp_error`; the ones after it go back to the queue.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import structlog

from mailvet.adapters.smtp_session import (
    BadReply,
    SessionError,
    SessionRefused,
    SessionTimeout,
    SmtpSession,
    TlsFailed,
    Transaction,
)
from mailvet.domain.network import is_public_address
from mailvet.domain.ports import ProbeFailure, ProbeResult, Resolver
from mailvet.domain.smtp_reply import Outcome, Reply, classify_rcpt
from mailvet.domain.work import current_job
from mailvet.settings import SmtpSettings

log = structlog.get_logger(__name__)

DOWN_SECONDS = 60.0  # an address that refused or timed out a connection is skipped this long
MAX_LOSSES = 4  # sessions lost under one recipient (not counting as tries) before it counts
ROUND_TRANSACTIONS = 10  # transactions pipelined in one write at most


class _Request:
    __slots__ = (
        "deadline",
        "domain",
        "future",
        "host",
        "job",
        "losses",
        "pool",
        "recipient",
        "solo",
        "tries",
    )

    def __init__(
        self,
        host: str,
        recipient: str,
        solo: bool,
        future: asyncio.Future[ProbeResult],
        deadline: float,
        tries: int,
        pool: ServerPool,
    ) -> None:
        self.pool = pool
        self.host = host
        self.deadline = deadline  # time.monotonic() when this attempt gives up
        self.recipient = recipient
        self.domain = recipient.rpartition("@")[2].lower()
        self.solo = solo
        self.future = future
        self.tries = tries
        self.losses = 0
        self.job = current_job.get()


class _JobQueues:
    """A server's queued recipients, one queue per job, served a batch from each job in
    turn (a small job's addresses do not wait behind a big job's thousands)."""

    def __init__(self) -> None:
        self._by_job: dict[str, deque[_Request]] = {}
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[_Request]:
        return itertools.chain.from_iterable(self._by_job.values())

    def append(self, request: _Request) -> None:
        queue = self._by_job.get(request.job)
        if queue is None:
            queue = self._by_job[request.job] = deque()
        queue.append(request)
        self._len += 1

    def appendleft(self, request: _Request) -> None:
        """Back at the head of its job's queue (that job's turn comes as it would have)."""
        queue = self._by_job.get(request.job)
        if queue is None:
            queue = self._by_job[request.job] = deque()
        queue.appendleft(request)
        self._len += 1

    def first(self) -> _Request | None:
        for queue in self._by_job.values():
            if queue:
                return queue[0]
        return None

    def take(self, limit: int) -> list[_Request]:
        """Up to `limit` unanswered requests of the next job in turn."""
        while self._by_job:
            job = next(iter(self._by_job))
            queue = self._by_job.pop(job)
            batch: list[_Request] = []
            while queue and len(batch) < limit:
                request = queue.popleft()
                self._len -= 1
                if not request.future.done():
                    batch.append(request)
            if queue:
                self._by_job[job] = queue  # to the back of the round
            if batch:
                return batch
        return []

    def drop_done(self) -> None:
        for job, queue in list(self._by_job.items()):
            kept = [request for request in queue if not request.future.done()]
            if len(kept) < len(queue):
                self._len -= len(queue) - len(kept)
                if kept:
                    self._by_job[job] = deque(kept)
                else:
                    del self._by_job[job]

    def clear(self) -> None:
        self._by_job.clear()
        self._len = 0


class _Group(NamedTuple):
    """One transaction of a round: the batch, the domains whose control it asks first, the
    recipients as sent (controls, then the batch) and whether it needs SMTPUTF8."""

    batch: list[_Request]
    controls: list[str]
    recipients: list[str]
    smtputf8: bool


def _failure_of(exc: SessionError) -> ProbeFailure:
    """What a session that ended under a recipient tells about it."""
    if isinstance(exc, SessionTimeout):
        return ProbeFailure.TIMEOUT
    if isinstance(exc, BadReply):
        return ProbeFailure.SMTP_ERROR
    return ProbeFailure.CONNECTION_FAILED


class _Unreachable(Exception):
    """No session could be opened to the server address."""

    def __init__(self, failure: ProbeFailure) -> None:
        self.failure = failure


class _TryLater(Exception):
    """The server said 4xx at the greeting or EHLO."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


class ServerPool:
    """Probes for one server address (IPv4 or IPv6), whatever MX names point at it."""

    def __init__(self, address: str, prober: SmtpProber) -> None:
        self.address = address
        self._prober = prober
        self._settings = prober.settings
        self._queue = _JobQueues()
        self._solo: deque[_Request] = deque()
        self._solo_last = False  # the last transaction taken was a catch-all probe
        self._sessions = 0  # session tasks, connected or connecting
        self._established = 0  # sessions past the greeting, now
        self.proven = 0  # the most sessions the server has had open with us at once
        self.cap = self._settings.per_host_connections
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self.batch_size = max(1, self._settings.recipients_per_transaction)
        self.rcpt_limit: int | None = None  # RCPTs a transaction may hold, learned from a 452
        self.error_limit: int | None = None  # refusals a session may get before being dropped
        self._paused_until = 0.0
        self.progress_at = -math.inf  # time.monotonic() of the last reply this server gave

    # -- queue --------------------------------------------------------------------------

    def submit(
        self,
        host: str,
        recipients: Sequence[str],
        deadlines: Sequence[float],
        tries: Sequence[int],
        *,
        solo: bool = False,
    ) -> list[_Request]:
        loop = asyncio.get_running_loop()
        requests = []
        for recipient, deadline, tried in zip(recipients, deadlines, tries, strict=True):
            request = _Request(host, recipient, solo, loop.create_future(), deadline, tried, self)
            (self._solo if solo else self._queue).append(request)
            requests.append(request)
        self._spawn()
        return requests

    def _pending(self) -> int:
        """Transactions the queued work needs."""
        return len(self._solo) + math.ceil(len(self._queue) / self.batch_size)

    def _spawn(self) -> None:
        # (answered or expired requests stay queued until a batch skips them: dropping them
        # here would cost a scan of the queue per submitted address)
        down = self._prober.down_failure(self.address)
        if down is not None:
            self._fail_all(down)
            return
        now = time.monotonic()
        if self._paused_until > now:
            return
        # slow start: one session beyond what the server has already taken at once, so a
        # server whose cap is below ours answers one 421 (and the cap is learned), not several
        wanted = min(self._pending(), self.cap, self.proven + 1) - self._sessions
        for _ in range(max(0, wanted)):
            self._sessions += 1
            task = asyncio.create_task(self._run_session())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _drop_done(self) -> None:
        if any(request.future.done() for request in self._solo):
            kept = [request for request in self._solo if not request.future.done()]
            self._solo.clear()
            self._solo.extend(kept)
        self._queue.drop_done()

    def _requests(self) -> list[_Request]:
        return [*self._solo, *self._queue]

    def _fail_all(self, failure: ProbeFailure) -> None:
        for request in self._requests():
            self._resolve(request, ProbeResult(mx=request.host, failure=failure))
        self._solo.clear()
        self._queue.clear()

    @staticmethod
    def _resolve(request: _Request, result: ProbeResult) -> None:
        if not request.future.done():
            request.future.set_result(result)

    def _put_back(self, request: _Request) -> None:
        (self._solo if request.solo else self._queue).appendleft(request)

    def _retry_later(self, request: _Request, result: ProbeResult) -> None:
        """A temporary answer: ask again after the delay, or let this answer stand."""
        if request.tries >= self._settings.retries:
            self._resolve(request, result)
            return
        request.tries += 1
        request.deadline += self._settings.retry_delay  # the wait is not part of the attempt
        self._later(self._settings.retry_delay, lambda: self._requeue(request))

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        """Run `action` after `delay`; close() cancels what is still waiting (a fired timer
        leaves the set, so a long-running worker does not keep every retry it made)."""

        def fire() -> None:
            self._timers.discard(handle)
            action()

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    def _lost(self, request: _Request, failure: ProbeFailure) -> None:
        """The session ended under this recipient through no fault of its own."""
        request.losses += 1
        if request.losses <= MAX_LOSSES:
            self._put_back(request)
        else:
            self._retry_later(request, ProbeResult(mx=request.host, failure=failure))

    def _requeue(self, request: _Request) -> None:
        if request.future.done():
            return
        (self._solo if request.solo else self._queue).append(request)
        self._spawn()

    def _take_batch(self, limit: int) -> list[_Request]:
        """A catch-all probe first, but not two in a row while recipients wait: a server
        hosting hundreds of domains gets a catch-all probe (a transaction of one RCPT) for
        each as it comes, and served first they held its queued recipients for most of a
        job (the world bench's 324-domain server answered 6-15 RCPTs a second for 25 s)."""
        if not self._solo_last or not self._queue:
            solo = self._take_solo()
            if solo:
                return solo
        self._solo_last = False
        # only done recipients queued (or none at all): a solo after all
        return self._queue.take(limit) or self._take_solo()

    def _take_round(self, limit: int, budget: float, pipelining: bool) -> list[list[_Request]]:
        """The transactions of one round trip. Without PIPELINING, `_take_batch`'s one. With
        it, a catch-all probe taken first is followed by a batch of queued recipients, and
        while the round holds fewer than `limit` RCPTs more catch-all probes follow, each
        in a transaction of its own, up to ROUND_TRANSACTIONS: a server hosting hundreds
        of small domains got one round trip per catch-all probe, the last of its job.
        `budget` bounds the round's RCPTs (refusals the session may still draw)."""
        first = self._take_batch(limit)
        if not first:
            return []
        taken = [first]
        if not pipelining:
            return taken
        total = len(first)
        room = int(min(limit, budget - total))
        if first[0].solo and self._queue and room >= 1:
            batch = self._queue.take(room)
            if batch:
                self._solo_last = False
                taken.append(batch)
                total += len(batch)
        while len(taken) < ROUND_TRANSACTIONS and total < min(limit, budget):
            solo = self._take_solo()
            if not solo:
                break
            taken.append(solo)
            total += 1
        return taken

    def _take_solo(self) -> list[_Request]:
        """The next catch-all probe still wanted, alone, or [] when none is."""
        while self._solo:
            request = self._solo.popleft()
            if not request.future.done():
                self._solo_last = True
                return [request]
        return []

    # -- sessions -----------------------------------------------------------------------

    async def _run_session(self) -> None:
        session: SmtpSession | None = None
        batch: list[_Request] = []
        try:
            async with self._prober.connection_slot():
                if not self._pending():
                    return
                session = await self._open()
                self._established += 1
                if self._established > self.proven:
                    self.proven = self._established
                    self._spawn()  # the server took one more: the next may open
                controls: dict[str, Reply | None] = {}
                refusals = 0
                while True:
                    limit = self.batch_size
                    budget = math.inf  # refusals the session may still draw
                    if self.error_limit is not None:
                        budget = self.error_limit - 1 - refusals
                        limit = min(limit, int(budget))
                        if limit < 1:
                            return  # a fresh session before the server's error limit
                    batches = self._take_round(limit, budget, session.pipelining)
                    if not batches:
                        return
                    batch = [request for taken in batches for request in taken]
                    alive, refused = await self._round(session, batches, controls, refusals)
                    refusals += refused
                    batch = []
                    if not alive:
                        return
        except _Unreachable as exc:
            if self._sessions > 1:
                # other sessions to this server are open or opening: it may only want fewer
                self._lower_cap("connect_failed")
                return
            self._prober.mark_down(self.address, exc.failure)
            self._fail_all(exc.failure)
        except _TryLater as exc:
            if self._sessions > 1:
                self._lower_cap(f"greeting_{exc.reply.code}")
                return
            self._pause(exc.reply)
        except SessionError as exc:
            failure = _failure_of(exc)
            log.debug("smtp_session_lost", server=self.address, error=str(exc))
            for request in batch:  # (a round settles its own: this is a safety net)
                self._retry_later(request, ProbeResult(mx=request.host, failure=failure))
        finally:
            try:
                if session is not None:
                    await session.close()
            finally:
                # counted until the server has answered QUIT: a session opened while this one
                # is closing would be one too many for a server at its cap
                self._sessions -= 1
                if session is not None:
                    self._established -= 1
            if self._pending():
                self._spawn()

    def _lower_cap(self, why: str) -> None:
        self.cap = max(1, self._sessions - 1)
        log.info("mx_connection_cap_lowered", server=self.address, cap=self.cap, why=why)

    def _pause(self, reply: Reply) -> None:
        """The only session was told to come back later: every queued recipient counts a
        try (like greylisting) and the pool waits `retry_delay` before the next session."""
        delay = self._settings.retry_delay
        for request in self._requests():
            if request.tries >= self._settings.retries:
                self._resolve(
                    request,
                    ProbeResult(mx=request.host, reply=reply, failure=ProbeFailure.TEMPORARY),
                )
            else:
                request.tries += 1
                request.deadline += delay  # the wait is not part of the attempt
        self._drop_done()
        self._paused_until = time.monotonic() + delay
        self._later(delay, self._spawn)
        log.info("mx_try_later", server=self.address, code=reply.code, delay=delay)

    async def _open(self) -> SmtpSession:
        first = self._solo[0] if self._solo else self._queue.first()
        host = first.host if first is not None else None
        return await self._prober.open_session(self.address, host)

    async def _round(
        self,
        session: SmtpSession,
        batches: list[list[_Request]],
        controls: dict[str, Reply | None],
        refusals_before: int,
    ) -> tuple[bool, int]:
        """Run the round's transactions (one write when pipelined); returns (can the session
        go on, refusals they drew)."""
        groups = [group for batch in batches if (group := self._prepare(session, batch, controls))]
        if not groups:
            return True, 0
        done, error = await session.transactions(
            self._settings.mail_from, [(group.recipients, group.smtputf8) for group in groups]
        )
        alive = True
        refused = 0
        for group, tx in zip(groups, done, strict=False):
            alive, drawn = self._settle(group, tx, controls, refusals_before + refused)
            refused += drawn
        unanswered = groups[len(done) :]
        if error is not None:
            # the session ended before this transaction's first reply: as when it ends under
            # a lone transaction (its recipients count a try)
            alive = False
            failure = _failure_of(error)
            log.debug("smtp_session_lost", server=self.address, error=str(error))
            for request in unanswered[0].batch:
                self._retry_later(request, ProbeResult(mx=request.host, failure=failure))
            unanswered = unanswered[1:]
        for group in reversed(unanswered):  # never sent an answer: back as they were
            for request in reversed(group.batch):
                self._put_back(request)
        return alive and not unanswered, refused

    def _prepare(
        self, session: SmtpSession, batch: list[_Request], controls: dict[str, Reply | None]
    ) -> _Group | None:
        """The transaction of a batch: its recipients, controls first (None: nothing to ask)."""
        usable: list[_Request] = []
        for request in batch:
            if not request.recipient.isascii() and not session.smtputf8:
                self._resolve(
                    request, ProbeResult(mx=request.host, failure=ProbeFailure.NOT_SUPPORTED)
                )
            else:
                usable.append(request)
        if not usable:
            return None
        batch = usable
        solo = batch[0].solo
        control_domains = (
            [] if solo else [d for d in dict.fromkeys(r.domain for r in batch) if d not in controls]
        )
        # the controls count toward a server's RCPT limit, once it is known
        known = self.rcpt_limit
        excess = 0 if known is None else len(control_domains) + len(batch) - known
        if excess > 0 and len(batch) > 1:
            keep = max(1, len(batch) - excess)
            for request in reversed(batch[keep:]):
                self._put_back(request)
            batch = batch[:keep]
            control_domains = [d for d in control_domains if any(r.domain == d for r in batch)]
        recipients = [f"postmaster@{domain}" for domain in control_domains]
        recipients += [request.recipient for request in batch]
        smtputf8 = session.smtputf8 and any(not r.isascii() for r in recipients)
        return _Group(batch, control_domains, recipients, smtputf8)

    def _settle(
        self,
        group: _Group,
        tx: Transaction,
        controls: dict[str, Reply | None],
        refusals_before: int,
    ) -> tuple[bool, int]:
        """Each recipient of a transaction answered, retried or put back; returns (can the
        session go on, refusals it drew)."""
        batch, control_domains, recipients = group.batch, group.controls, group.recipients
        solo = batch[0].solo
        if tx.mail.code >= 400:
            result_failure = ProbeFailure.SMTP_ERROR
            for request in batch:
                result = ProbeResult(mx=request.host, reply=tx.mail, failure=result_failure)
                if tx.mail.code < 500:
                    self._retry_later(request, result)
                else:
                    self._resolve(request, result)
            return tx.alive and tx.mail.code != 421, 0
        offset = len(control_domains)
        for index, domain in enumerate(control_domains):
            reply = tx.rcpts[index] if index < len(tx.rcpts) else None
            if reply is not None and classify_rcpt(reply) is Outcome.TEMPORARY:
                reply = None  # greylisted control: no evidence either way
            controls[domain] = reply
        answered = len(tx.rcpts)
        if answered:
            self.progress_at = time.monotonic()
        garbled = tx.garbled
        refused = sum(1 for reply in tx.rcpts if reply.code >= 500)
        # our RCPTs the server considered, whatever it answered (a greylisting 450 too): all
        # within its RCPT limit. Counting only the answers that settle a recipient taught a
        # greylisting server's limit as 1 (a domain's first transaction is all 450s up to the
        # limit): every retry then went in a transaction of its own
        taken = 0
        too_many = False
        for index, request in enumerate(batch):
            position = offset + index
            if garbled is not None and position == garbled:
                garbage = ProbeResult(mx=request.host, failure=ProbeFailure.SMTP_ERROR)
                self._resolve(request, garbage)
                continue
            if position >= answered:  # the server ended the session part-way, or garbled
                if position == answered and isinstance(tx.lost, SessionTimeout):
                    # the reply it stalled on: that recipient's own timeout (counts a try)
                    stalled = ProbeResult(mx=request.host, failure=ProbeFailure.TIMEOUT)
                    self._retry_later(request, stalled)
                elif position == answered and garbled is None:
                    self._lost(request, ProbeFailure.CONNECTION_FAILED)
                else:
                    self._put_back(request)
                continue
            reply = tx.rcpts[position]
            outcome = classify_rcpt(reply)
            if outcome is Outcome.TOO_MANY_RECIPIENTS and offset + taken > 0:
                too_many = True
                self._put_back(request)
            elif outcome in (Outcome.TEMPORARY, Outcome.TOO_MANY_RECIPIENTS):
                if outcome is Outcome.TEMPORARY:
                    taken += 1
                self._retry_later(request, ProbeResult(mx=request.host, reply=reply))
            else:
                taken += 1
                self._resolve(
                    request,
                    ProbeResult(mx=request.host, reply=reply, control=controls.get(request.domain)),
                )
        if too_many:
            limit = max(1, offset + taken)
            if limit != self.rcpt_limit:
                log.info("mx_batch_lowered", server=self.address, batch=limit)
            self.batch_size = self.rcpt_limit = limit
        elif (
            not tx.alive
            and garbled is None
            and answered < len(recipients)
            and tx.rcpts
            and tx.rcpts[-1].code >= 500
        ):
            # dropped right after a refusal: a Postfix-style error limit (smtpd_hard_error_limit)
            limit = refusals_before + refused
            if self.error_limit is None or limit < self.error_limit:
                self.error_limit = max(2, limit)
                log.info("mx_error_limit", server=self.address, limit=self.error_limit)
        elif tx.alive and not solo and len(batch) >= self.batch_size:
            ceiling = self.rcpt_limit or self._settings.max_recipients_per_transaction
            self.batch_size = max(self.batch_size, min(ceiling, self.batch_size * 2))
        return tx.alive, refused

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
        self._pools: dict[str, ServerPool] = {}
        self._down: dict[str, tuple[ProbeFailure, float]] = {}
        self._slots = asyncio.Semaphore(settings.max_connections)

    def connection_slot(self) -> asyncio.Semaphore:
        return self._slots

    def down_failure(self, address: str) -> ProbeFailure | None:
        entry = self._down.get(address)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            del self._down[address]
            return None
        return entry[0]

    def mark_down(self, address: str, failure: ProbeFailure) -> None:
        self._down[address] = (failure, time.monotonic() + DOWN_SECONDS)
        log.info("mx_down", server=address, failure=failure.value)

    async def open_session(self, address: str, host: str | None) -> SmtpSession:
        """Open a session to `address`, or raise _Unreachable / _TryLater."""
        settings = self.settings
        try:
            try:
                return await SmtpSession.open(
                    address,
                    settings.port,
                    settings.helo_name,
                    settings.timeout,
                    starttls=settings.starttls,
                    tls_verify=settings.tls_verify,
                    tls_server_name=host,
                )
            except TlsFailed:
                # a broken TLS handshake must not cost the probe: once more in the clear
                return await SmtpSession.open(
                    address,
                    settings.port,
                    settings.helo_name,
                    settings.timeout,
                    starttls=False,
                )
        except SessionRefused as exc:
            log.debug("smtp_refused", server=address, code=exc.reply.code)
            if 400 <= exc.reply.code < 500:
                raise _TryLater(exc.reply) from exc
            raise _Unreachable(ProbeFailure.CONNECTION_FAILED) from exc
        except SessionTimeout as exc:
            raise _Unreachable(ProbeFailure.TIMEOUT) from exc
        except SessionError as exc:
            log.debug("smtp_connect_failed", server=address, error=str(exc))
            raise _Unreachable(ProbeFailure.CONNECTION_FAILED) from exc

    def _pool(self, address: str) -> ServerPool:
        pool = self._pools.get(address)
        if pool is None:
            pool = self._pools[address] = ServerPool(address, self)
        return pool

    async def _addresses(self, host: str) -> list[str]:
        addresses = await self._resolver.host_addresses(host)
        if self.settings.allow_private:
            return addresses
        public = [address for address in addresses if is_public_address(address)]
        if len(public) < len(addresses):
            log.warning("mx_address_not_public", host=host, refused=len(addresses) - len(public))
        return public

    async def probe(
        self, hosts: Sequence[str], recipients: Sequence[str], *, solo: bool = False
    ) -> list[ProbeResult]:
        allowed = self.settings.address_deadline
        deadlines = [time.monotonic() + allowed] * len(recipients)
        tries = [0] * len(recipients)
        results: list[ProbeResult | None] = [None] * len(recipients)
        pending = list(range(len(recipients)))
        last = ProbeResult(failure=ProbeFailure.CONNECTION_FAILED)
        for host in hosts[: max(1, self.settings.max_mx_hosts)]:
            if not pending:
                break
            addresses = await self._addresses(host)
            if not addresses:
                last = ProbeResult(mx=host, failure=ProbeFailure.CONNECTION_FAILED)
            for address in addresses:
                now = time.monotonic()
                for index in pending:
                    if deadlines[index] <= now:
                        results[index] = ProbeResult(mx=host, failure=ProbeFailure.TIMEOUT)
                pending = [i for i in pending if results[i] is None]
                if not pending:
                    break
                requests = self._pool(address).submit(
                    host,
                    [recipients[i] for i in pending],
                    [deadlines[i] for i in pending],
                    [tries[i] for i in pending],
                    solo=solo,
                )
                await _wait(requests, allowed)
                still: list[int] = []
                for index, request in zip(pending, requests, strict=True):
                    deadlines[index] = _deadline(request, allowed)
                    tries[index] = request.tries
                    outcome = request.future.result()
                    if outcome.reply is None and outcome.failure in (
                        ProbeFailure.CONNECTION_FAILED,
                        ProbeFailure.TIMEOUT,
                    ):
                        still.append(index)  # this server could not be asked: the next one
                        last = outcome
                    else:
                        results[index] = outcome
                pending = still
        now = time.monotonic()
        for index in pending:
            results[index] = (
                last
                if deadlines[index] > now
                else ProbeResult(mx=last.mx, failure=ProbeFailure.TIMEOUT)
            )
        return [result if result is not None else last for result in results]

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self._pools.values()))
        self._pools.clear()


def _deadline(request: _Request, allowed: float) -> float:
    """When the request gives up: its own deadline, pushed back while its server keeps
    answering others (a queue behind a live server is not a tar-pit)."""
    return max(request.deadline, request.pool.progress_at + allowed)


async def _wait(requests: Sequence[_Request], allowed: float) -> None:
    """Wait for every request's answer. One timer for the lot answers TIMEOUT to each
    request whose deadline has passed (the pool then skips it) and is set again for the
    next one due; a retry or a live server pushes a deadline back. (A timer per request
    was a hundred thousand timers for a big job.)"""
    loop = asyncio.get_running_loop()
    handle: asyncio.TimerHandle | None = None

    def expire() -> None:
        nonlocal handle
        now = time.monotonic()
        due = math.inf
        for request in requests:
            if request.future.done():
                continue
            deadline = _deadline(request, allowed)
            if deadline > now:
                due = min(due, deadline)
            else:
                request.future.set_result(
                    ProbeResult(mx=request.host, failure=ProbeFailure.TIMEOUT)
                )
        handle = loop.call_at(due, expire) if due < math.inf else None

    if not requests:
        return
    handle = loop.call_at(min(request.deadline for request in requests), expire)
    try:
        for request in requests:  # one wake-up for the answers of a whole transaction
            await request.future
    except asyncio.CancelledError:
        for request in requests:  # nobody waits for them: the pool skips them
            request.future.cancel()
        raise
    finally:
        if handle is not None:
            handle.cancel()


__all__ = ["ServerPool", "SmtpProber", "is_public_address"]
