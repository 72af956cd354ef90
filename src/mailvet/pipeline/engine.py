"""The validation engine: syntax -> risk lists -> DNS -> SMTP, for a batch of addresses.

Pure decisions live in mailvet.domain (syntax, risk, SMTP reply meaning); this module
orders them, groups addresses by domain, and talks to the Resolver and SmtpProber ports.
Duplicates are validated once: verdicts are remembered per normalized address, and
concurrent requests for the same address share one probe.

A domain's addresses go to its desk (one per job and domain, shared by all the chunks of
the job that hold the domain): one task, route and catch-all question for them all, and
probe calls of up to REACHED_BATCH addresses as they come, whatever chunk they are from;
each chunk is told its own verdicts as they are reached.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import msgspec
import structlog

from mailvet.domain.address import check_syntax
from mailvet.domain.evidence import rcpt_outcome
from mailvet.domain.offline import offline_verdict
from mailvet.domain.ports import (
    MailRoute,
    ProbeFailure,
    ProbeResult,
    Resolver,
    RouteKind,
    SmtpProber,
)
from mailvet.domain.smtp_reply import REASON_OF, Outcome, classify_rcpt
from mailvet.domain.verdict import STATUS_OF, Check, Reason, Status, Verdict
from mailvet.domain.work import current_job
from mailvet.memo import Memo

log = structlog.get_logger(__name__)

_ROUTE_REASON = {
    RouteKind.NO_DOMAIN: Reason.NO_DOMAIN,
    RouteKind.NO_MX: Reason.NO_MX,
    RouteKind.NULL_MX: Reason.NULL_MX,
    RouteKind.TIMEOUT: Reason.TIMEOUT,
    RouteKind.FAILED: Reason.CONNECTION_FAILED,
}
_FAILURE_REASON = {
    ProbeFailure.TIMEOUT: Reason.TIMEOUT,
    ProbeFailure.CONNECTION_FAILED: Reason.CONNECTION_FAILED,
    ProbeFailure.SMTP_ERROR: Reason.SMTP_ERROR,
    ProbeFailure.TEMPORARY: Reason.GREYLISTED,
    ProbeFailure.NOT_SUPPORTED: Reason.NOT_CHECKED,
}


# offline reasons the network can still change (a typo or disposable domain may not exist)
_NEEDS_NETWORK = frozenset({Reason.NOT_CHECKED, Reason.DISPOSABLE, Reason.SUSPECTED_TYPO})


def _verdict(reason: Reason, base: Verdict, **changes: object) -> Verdict:
    """`base` with a new reason (and its status), and any other fields changed."""
    return msgspec.structs.replace(base, status=STATUS_OF[reason], reason=reason, **changes)


def verdict_from_probe(
    base: Verdict, result: ProbeResult, catch_all: bool | None, *, asked: bool = True
) -> Verdict:
    """Turn what the MX said into the verdict.

    A refusal is read with the session's postmaster control (domain/evidence.py). An
    accepted mailbox on a catch-all domain is risky; on a domain whose catch-all test stayed
    open (tempfails past the retries) it is unknown/greylisted, never deliverable. The
    catch_all field is the domain's answer as it is (None: open), whatever the mailbox's
    own answer was; `asked` False (MAILVET_SMTP_CATCH_ALL_CHECK off): no test was made, the
    field stays None and an accepted mailbox is deliverable.
    """
    if not asked:
        catch_all = None
    code = result.reply.code if result.reply is not None else None
    if result.failure is not None:
        return _verdict(
            _FAILURE_REASON[result.failure], base, mx=result.mx, smtp_code=code, catch_all=catch_all
        )
    if result.reply is None:  # never: a probe result has a reply or a failure
        raise RuntimeError("a probe result with neither a reply nor a failure")
    outcome = rcpt_outcome(result.reply, result.control)
    reason = REASON_OF[outcome]
    if outcome is Outcome.ACCEPTED:
        if catch_all is True:
            reason = Reason.CATCH_ALL
        elif catch_all is None and asked:
            reason = Reason.GREYLISTED
    return _verdict(reason, base, mx=result.mx, smtp_code=code, catch_all=catch_all)


Reached = Callable[[list[int], list[Verdict]], None]
REACHED_BATCH = 20  # a domain's mailboxes asked in one probe call, reported when it returns
_UNSET: Any = object()  # Memo.peek's "not known yet"
Key = tuple[str, Check]  # (normalized address, checks)


def _reported_mx(route: MailRoute) -> str:
    """The mx column: the most preferred host, the same one whatever order equal-preference
    hosts were shuffled into."""
    if len(route.hosts) == 1 or not route.preferences:
        return route.hosts[0]
    best = min(route.preferences)
    return min(h for h, p in zip(route.hosts, route.preferences, strict=True) if p == best)


class _Chunk:
    """One check_many call's addresses at the desks: where their verdicts go (`out`, and
    `reached` as they come); `done` once every one of them is answered."""

    __slots__ = ("done", "left", "out", "reached", "todo")

    def __init__(
        self,
        out: list[Verdict],
        todo: dict[Key, list[int]],
        reached: Reached | None,
        left: int,
    ) -> None:
        self.out = out
        self.todo = todo
        self.reached = reached
        self.left = left
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def report(self, keys: list[Key], verdicts: list[Verdict]) -> None:
        if self.done.done():  # cancelled or failed: nobody reads these rows any more
            return
        indexes: list[int] = []
        out, todo = self.out, self.todo
        for key, verdict in zip(keys, verdicts, strict=True):
            for index in todo[key]:
                out[index] = verdict
                indexes.append(index)
        try:
            if self.reached is not None:
                self.reached(indexes, [out[index] for index in indexes])
        except Exception as exc:
            self.fail(exc)
            return
        self.left -= len(keys)
        if self.left <= 0:
            self.done.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


_Item = tuple[Key, Verdict, str, _Chunk]  # (key, offline verdict, local part, its chunk)


class _Desk:
    """A domain's addresses waiting for the network, from every chunk of one job: one route
    lookup, one catch-all question and one task for all of them, whatever chunks they come
    in (a task and a probe call per (chunk, domain) were a third of a big job's CPU)."""

    __slots__ = ("catch_all", "domain", "items", "parts", "wakeup")

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.items: list[_Item] = []
        self.parts = 0  # probe calls under way
        self.wakeup: asyncio.Future[None] | None = None
        self.catch_all: asyncio.Future[bool | None] | None = None

    def wake(self) -> None:
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)


class Engine:
    def __init__(
        self,
        resolver: Resolver,
        prober: SmtpProber,
        *,
        catch_all_check: bool = True,
        cache_size: int = 200_000,
        verdict_ttl: float = 3600.0,
        unknown_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolver = resolver
        self._prober = prober
        self._catch_all_check = catch_all_check

        # a long-running worker must not keep an answer that may change: unknowns briefly
        def verdict_life(verdict: Verdict) -> float:
            return unknown_ttl if verdict.status is Status.UNKNOWN else verdict_ttl

        def catch_all_life(answer: bool | None) -> float:
            return unknown_ttl if answer is None else verdict_ttl

        self._catch_all: Memo[str, bool | None] = Memo(cache_size, ttl=catch_all_life, clock=clock)
        self._verdicts: Memo[Key, Verdict] = Memo(cache_size, ttl=verdict_life, clock=clock)
        self._in_flight: dict[Key, asyncio.Future[Verdict]] = {}
        self._desks: dict[tuple[str, str, Check], _Desk] = {}  # (job, domain, checks)
        self._tasks: set[asyncio.Task[None]] = set()

    async def check(self, address: str, checks: Check = Check.SMTP) -> Verdict:
        return (await self.check_many([address], checks))[0]

    async def check_many(
        self, addresses: Sequence[str], checks: Check, *, reached: Reached | None = None
    ) -> list[Verdict]:
        """One verdict per address, in order. `reached(indexes, verdicts)` is told the
        network verdicts as they come, up to REACHED_BATCH of a domain at a time (a worker
        keeps them in its journal)."""
        cells = [address.strip() for address in addresses]
        syntaxes = [check_syntax(cell) for cell in cells]
        out = [offline_verdict(syntax, cell) for syntax, cell in zip(syntaxes, cells, strict=True)]
        if checks is Check.SYNTAX:
            return out
        todo: dict[Key, list[int]] = defaultdict(list)
        for index, verdict in enumerate(out):
            if verdict.reason in _NEEDS_NETWORK:
                todo[(verdict.normalized, checks)].append(index)
        # known verdicts at once; verdicts another chunk is computing are shared; the rest
        # go to their domain's desk (one per job and domain, shared by the job's chunks)
        shared: dict[Key, asyncio.Future[Verdict]] = {}
        new: list[tuple[Key, Verdict, str, str]] = []
        loop = asyncio.get_running_loop()
        for key, indexes in todo.items():
            known = self._verdicts.peek(key, _UNSET)
            if known is not _UNSET:
                for index in indexes:
                    out[index] = known
            elif key in self._in_flight:
                shared[key] = self._in_flight[key]
            else:
                first = indexes[0]
                self._in_flight[key] = loop.create_future()
                syntax = syntaxes[first]
                new.append((key, out[first], syntax.local, syntax.ascii_domain))
        if new:
            chunk = _Chunk(out, todo, reached, len(new))
            job = current_job.get()
            woken: dict[str, _Desk] = {}
            for key, base, local, domain in new:
                desk = woken.get(domain)
                if desk is None:
                    desk = self._desks.get((job, domain, checks))
                    if desk is None:
                        desk = self._desks[(job, domain, checks)] = _Desk(domain)
                        self._start(self._serve(desk, (job, domain, checks), checks))
                    woken[domain] = desk
                desk.items.append((key, base, local, chunk))
            for desk in woken.values():
                desk.wake()
            await chunk.done  # (cancelled: the desks skip this chunk's addresses not asked yet)
        for key, future in shared.items():
            verdict = await asyncio.shield(future)
            for index in todo[key]:
                out[index] = verdict
        return out

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)  # in the caller's job context
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, desk: _Desk, name: tuple[str, str, Check], checks: Check) -> None:
        """The desk's work: every batch of addresses as it comes, until no address waits
        and no probe call is under way. The route is asked for each batch (the resolver's
        memo answers at once while it is fresh: a desk kept busy for hours must not keep a
        route past its TTL)."""
        items: list[_Item] = []
        try:
            while True:
                route = await self._resolver.mail_route(desk.domain)
                items, desk.items = desk.items, []
                live = []
                for item in items:
                    if item[3].done.cancelled():  # its chunk is gone: nobody waits for it
                        future = self._in_flight.pop(item[0], None)
                        if future is not None:
                            future.cancel()
                    else:
                        live.append(item)
                if live:
                    self._dispatch(desk, route, live, checks)
                items = []
                if not desk.items:
                    if not desk.parts:
                        return
                    desk.wakeup = asyncio.get_running_loop().create_future()
                    await desk.wakeup
                    desk.wakeup = None
        except BaseException as exc:
            self._fail([*items, *desk.items], exc)
            desk.items = []
            raise
        finally:
            if self._desks.get(name) is desk:
                del self._desks[name]

    def _dispatch(self, desk: _Desk, route: MailRoute, items: list[_Item], checks: Check) -> None:
        """Verdicts known from the route at once; the mailboxes to ask, REACHED_BATCH per
        probe call, the calls made at once (the prober queues them in order at the server):
        a big domain's verdicts are reported as they come, so a worker killed mid-domain
        keeps most of them."""
        if route.kind not in (RouteKind.MX, RouteKind.IMPLICIT):
            reason = _ROUTE_REASON[route.kind]
            self._file(items, [_verdict(reason, base) for _, base, _, _ in items])
            return
        mx = _reported_mx(route)
        if checks is Check.DNS:
            self._file(items, [msgspec.structs.replace(base, mx=mx) for _, base, _, _ in items])
            return
        # disposable or a typo domain: the mailbox answer would not change the advice
        told = [item for item in items if item[1].reason is not Reason.NOT_CHECKED]
        if told:
            self._file(told, [msgspec.structs.replace(base, mx=mx) for _, base, _, _ in told])
            if len(told) == len(items):
                return
            items = [item for item in items if item[1].reason is Reason.NOT_CHECKED]
        answer = desk.catch_all
        if answer is None or (
            answer.done()
            and self._catch_all_check
            and self._catch_all.peek(desk.domain, _UNSET) is _UNSET
        ):  # first asked, or what the memo knew has expired (an open question: seconds)
            answer = desk.catch_all = asyncio.ensure_future(self._is_catch_all(desk.domain, route))
        for n in range(0, len(items), REACHED_BATCH):
            desk.parts += 1
            self._start(self._probe(desk, route, answer, items[n : n + REACHED_BATCH]))

    async def _probe(
        self,
        desk: _Desk,
        route: MailRoute,
        catch_all_answer: asyncio.Future[bool | None],
        items: list[_Item],
    ) -> None:
        try:
            # a non-ASCII mailbox needs SMTPUTF8: the prober says not_supported without it
            domain = desk.domain
            results = await self._prober.probe(
                route.hosts, [f"{local}@{domain}" for _, _, local, _ in items]
            )
            catch_all = await catch_all_answer
            verdicts = [
                verdict_from_probe(item[1], result, catch_all, asked=self._catch_all_check)
                for item, result in zip(items, results, strict=True)
            ]
        except BaseException as exc:
            self._fail(items, exc)
            raise
        finally:
            desk.parts -= 1
            desk.wake()
        self._file(items, verdicts)

    def _file(self, items: list[_Item], verdicts: list[Verdict]) -> None:
        """Each verdict into the memo and to the futures other chunks wait on, then to its
        chunk, one report per chunk."""
        by_chunk: dict[int, tuple[_Chunk, list[Key], list[Verdict]]] = {}
        for (key, _, _, chunk), verdict in zip(items, verdicts, strict=True):
            self._verdicts.put(key, verdict)
            future = self._in_flight.pop(key, None)
            if future is not None and not future.done():
                future.set_result(verdict)
            entry = by_chunk.get(id(chunk))
            if entry is None:
                entry = by_chunk[id(chunk)] = (chunk, [], [])
            entry[1].append(key)
            entry[2].append(verdict)
        for chunk, keys, found in by_chunk.values():
            chunk.report(keys, found)

    def _fail(self, items: list[_Item], exc: BaseException) -> None:
        """The addresses' waiters get the exception (cancelled: a cancellation)."""
        for key, _, _, chunk in items:
            future = self._in_flight.pop(key, None)
            if future is not None and not future.done():
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()  # retrieved: a chunk without sharers must not warn
            if isinstance(exc, asyncio.CancelledError):
                if not chunk.done.done():
                    chunk.done.cancel()
            else:
                chunk.fail(exc)

    async def _is_catch_all(self, domain: str, route: MailRoute) -> bool | None:
        """Does the domain accept a random mailbox? Asked once per domain (None: could not
        tell, e.g. tempfails past the retries; also when the check is off, which
        verdict_from_probe is told as `asked`)."""
        if not self._catch_all_check:
            return None
        return await self._catch_all.get(domain, lambda: self._accepts_anyone(domain, route))

    async def _accepts_anyone(self, domain: str, route: MailRoute) -> bool | None:
        probe = f"mailvet-{secrets.token_hex(6)}@{domain}"
        try:
            (result,) = await self._prober.probe(route.hosts, [probe], solo=True)
        except Exception:
            log.exception("catch_all_check_failed", domain=domain)
            return None
        if result.reply is None:
            return None
        outcome = classify_rcpt(result.reply)
        if outcome is Outcome.ACCEPTED:
            return True
        if outcome in (Outcome.TEMPORARY, Outcome.TOO_MANY_RECIPIENTS, Outcome.CLOSING):
            return None
        return False

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._prober.close()
