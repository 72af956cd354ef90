"""The validation engine: syntax -> risk lists -> DNS -> SMTP, for a batch of addresses.

Pure decisions live in mailvet.domain (syntax, risk, SMTP reply meaning); this module
orders them, groups addresses by domain, and talks to the Resolver and SmtpProber ports.
Duplicates are validated once: verdicts are remembered per normalized address, and
concurrent requests for the same address share one probe.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
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


def verdict_from_probe(base: Verdict, result: ProbeResult, catch_all: bool | None) -> Verdict:
    """Turn what the MX said into the verdict.

    A refusal is read with the session's postmaster control (domain/evidence.py). An
    accepted mailbox on a catch-all domain is risky; on a domain whose catch-all test stayed
    open (tempfails past the retries) it is unknown/greylisted, never deliverable.
    """
    code = result.reply.code if result.reply is not None else None
    flag = catch_all is True
    if result.failure is not None:
        return _verdict(
            _FAILURE_REASON[result.failure], base, mx=result.mx, smtp_code=code, catch_all=flag
        )
    if result.reply is None:  # never: a probe result has a reply or a failure
        raise RuntimeError("a probe result with neither a reply nor a failure")
    outcome = rcpt_outcome(result.reply, result.control)
    reason = REASON_OF[outcome]
    if outcome is Outcome.ACCEPTED:
        if catch_all is True:
            reason = Reason.CATCH_ALL
        elif catch_all is None:
            reason = Reason.GREYLISTED
    return _verdict(reason, base, mx=result.mx, smtp_code=code, catch_all=flag)


Reached = Callable[[list[int], list[Verdict]], None]
REACHED_BATCH = 20  # a domain's mailboxes asked in one probe call, reported when it returns
_UNSET: Any = object()  # Memo.peek's "not known yet"


def _reported_mx(route: MailRoute) -> str:
    """The mx column: the most preferred host, the same one whatever order equal-preference
    hosts were shuffled into."""
    if not route.preferences:
        return route.hosts[0]
    best = min(route.preferences)
    return min(h for h, p in zip(route.hosts, route.preferences, strict=True) if p == best)


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
        self._verdicts: Memo[tuple[str, Check], Verdict] = Memo(
            cache_size, ttl=verdict_life, clock=clock
        )
        self._in_flight: dict[tuple[str, Check], asyncio.Future[Verdict]] = {}

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
        todo: dict[tuple[str, Check], list[int]] = defaultdict(list)
        for index, verdict in enumerate(out):
            if verdict.reason in _NEEDS_NETWORK:
                todo[(verdict.normalized, checks)].append(index)
        # known verdicts at once; verdicts another chunk is computing are shared; the rest
        # go to the network grouped by domain: one route, one catch-all question and one
        # probe call per domain and chunk (per-address tasks were most of the CPU)
        shared: dict[tuple[str, Check], asyncio.Future[Verdict]] = {}
        groups: dict[str, list[tuple[tuple[str, Check], Verdict, str]]] = defaultdict(list)
        for key, indexes in todo.items():
            known = self._verdicts.peek(key, _UNSET)
            if known is not _UNSET:
                for index in indexes:
                    out[index] = known
            elif key in self._in_flight:
                shared[key] = self._in_flight[key]
            else:
                first = indexes[0]
                self._in_flight[key] = asyncio.get_running_loop().create_future()
                syntax = syntaxes[first]
                groups[syntax.ascii_domain].append((key, out[first], syntax.local))

        async def group(domain: str, items: list[tuple[tuple[str, Check], Verdict, str]]) -> None:
            def part(positions: list[int], verdicts: list[Verdict]) -> None:
                indexes: list[int] = []
                for position, verdict in zip(positions, verdicts, strict=True):
                    for index in todo[items[position][0]]:
                        out[index] = verdict
                        indexes.append(index)
                if reached is not None:
                    reached(indexes, [out[index] for index in indexes])

            await self._domain_group(domain, items, checks, part)

        await asyncio.gather(*(group(domain, items) for domain, items in groups.items()))
        for key, future in shared.items():
            verdict = await asyncio.shield(future)
            for index in todo[key]:
                out[index] = verdict
        return out

    async def _domain_group(
        self,
        domain: str,
        items: list[tuple[tuple[str, Check], Verdict, str]],
        checks: Check,
        report: Reached,
    ) -> list[Verdict]:
        """The network verdicts of one domain's addresses, each told to `report` (by
        position in `items`) as it is reached; each is also filed (memo and the futures
        other chunks wait on) or, on failure, its waiters get the exception."""
        try:
            verdicts = await self._domain_verdicts(
                domain,
                [base for _, base, _ in items],
                [local for _, _, local in items],
                checks,
                report,
            )
        except BaseException as exc:
            for key, _, _ in items:
                future = self._in_flight.pop(key)
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()  # retrieved: a chunk without sharers must not warn
            raise
        for (key, _, _), verdict in zip(items, verdicts, strict=True):
            self._verdicts.put(key, verdict)
            self._in_flight.pop(key).set_result(verdict)
        return verdicts

    async def _domain_verdicts(
        self,
        domain: str,
        bases: list[Verdict],
        locals_: list[str],
        checks: Check,
        report: Reached,
    ) -> list[Verdict]:
        """The verdicts of one domain's addresses; every position is told to `report`
        once, as soon as its verdict is known (mailbox answers REACHED_BATCH at a time)."""
        # no gate here: a chunk has hundreds of domains, a job tens of thousands of (chunk,
        # domain) groups, nearly all with a known route; the resolver bounds its own queries
        route = await self._resolver.mail_route(domain)
        everyone = list(range(len(bases)))
        if route.kind not in (RouteKind.MX, RouteKind.IMPLICIT):
            out = [_verdict(_ROUTE_REASON[route.kind], base) for base in bases]
            report(everyone, out)
            return out
        mx = _reported_mx(route)
        out = [msgspec.structs.replace(base, mx=mx) for base in bases]
        if checks is Check.DNS:
            report(everyone, out)
            return out
        # disposable or a typo domain: the mailbox answer would not change the advice
        asked = [i for i, base in enumerate(bases) if base.reason is Reason.NOT_CHECKED]
        told = [i for i, base in enumerate(bases) if base.reason is not Reason.NOT_CHECKED]
        if told:
            report(told, [out[i] for i in told])
        if not asked:
            return out
        catch_all_task = asyncio.ensure_future(self._is_catch_all(domain, route))

        async def probe(part: list[int]) -> None:
            # a non-ASCII mailbox needs SMTPUTF8: the prober says not_supported without it
            results = await self._prober.probe(
                route.hosts, [f"{locals_[i]}@{domain}" for i in part]
            )
            catch_all = await catch_all_task
            for i, result in zip(part, results, strict=True):
                out[i] = verdict_from_probe(out[i], result, catch_all)
            report(part, [out[i] for i in part])

        # parts asked at once (the prober queues them in order at the server): a big domain's
        # verdicts are reported as they come, so a worker killed mid-domain keeps most of them
        parts = [asked[n : n + REACHED_BATCH] for n in range(0, len(asked), REACHED_BATCH)]
        if len(parts) == 1:
            await probe(parts[0])
            return out
        tasks = [asyncio.ensure_future(probe(part)) for part in parts]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        return out

    async def _is_catch_all(self, domain: str, route: MailRoute) -> bool | None:
        """Does the domain accept a random mailbox? Asked once per domain (None: could not
        tell, e.g. tempfails past the retries)."""
        if not self._catch_all_check:
            return False
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
        await self._prober.close()
