"""The validation engine: syntax -> risk lists -> DNS -> SMTP, for a batch of addresses.

Pure decisions live in mailvet.domain (syntax, risk, SMTP reply meaning); this module
orders them, groups addresses by domain, and talks to the Resolver and SmtpProber ports.
Duplicates are validated once: verdicts are remembered per normalized address, and
concurrent requests for the same address share one probe.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from typing import Any

import msgspec
import structlog

from mailvet.domain.address import Syntax, check_syntax
from mailvet.domain.ports import MailRoute, ProbeFailure, ProbeResult, Resolver, RouteKind, SmtpProber
from mailvet.domain.offline import offline_verdict
from mailvet.domain.evidence import rcpt_outcome
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
    assert result.reply is not None
    outcome = rcpt_outcome(result.reply, result.control)
    reason = REASON_OF[outcome]
    if outcome is Outcome.ACCEPTED:
        if catch_all is True:
            reason = Reason.CATCH_ALL
        elif catch_all is None:
            reason = Reason.GREYLISTED
    return _verdict(reason, base, mx=result.mx, smtp_code=code, catch_all=flag)


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
    ) -> None:
        self._resolver = resolver
        self._prober = prober
        self._catch_all_check = catch_all_check

        # a long-running worker must not keep an answer that may change: unknowns briefly
        def verdict_life(verdict: Verdict) -> float:
            return unknown_ttl if verdict.status is Status.UNKNOWN else verdict_ttl

        def catch_all_life(answer: bool | None) -> float:
            return unknown_ttl if answer is None else verdict_ttl

        self._catch_all: Memo[str, bool | None] = Memo(cache_size, ttl=catch_all_life)
        self._verdicts: Memo[tuple[str, Check], Verdict] = Memo(cache_size, ttl=verdict_life)

    async def check(self, address: str, checks: Check = Check.SMTP) -> Verdict:
        return (await self.check_many([address], checks))[0]

    async def check_many(self, addresses: Sequence[str], checks: Check) -> list[Verdict]:
        """One verdict per address, in order."""
        cells = [address.strip() for address in addresses]
        syntaxes = [check_syntax(cell) for cell in cells]
        out = [offline_verdict(syntax, cell) for syntax, cell in zip(syntaxes, cells, strict=True)]
        if checks is Check.SYNTAX:
            return out
        todo: dict[tuple[str, Check], list[int]] = defaultdict(list)
        for index, verdict in enumerate(out):
            if verdict.reason in _NEEDS_NETWORK:
                todo[(verdict.normalized, checks)].append(index)

        def network(key: tuple[str, Check]) -> Awaitable[Verdict]:
            first = todo[key][0]
            return self._verdicts.get(
                key, lambda: self._network_verdict(out[first], syntaxes[first], checks)
            )

        keys = list(todo)
        for key, verdict in zip(keys, await asyncio.gather(*map(network, keys)), strict=True):
            for index in todo[key]:
                out[index] = verdict
        return out

    async def _network_verdict(self, base: Verdict, syntax: Syntax, checks: Check) -> Verdict:
        route = await self._resolver.mail_route(syntax.ascii_domain)
        if route.kind not in (RouteKind.MX, RouteKind.IMPLICIT):
            return _verdict(_ROUTE_REASON[route.kind], base)
        based = msgspec.structs.replace(base, mx=_reported_mx(route))
        if base.reason is not Reason.NOT_CHECKED or checks is Check.DNS:
            # disposable or a typo domain: the mailbox answer would not change the advice
            return based
        # a non-ASCII mailbox needs SMTPUTF8: the prober says not_supported without it
        recipient = f"{syntax.local}@{syntax.ascii_domain}"
        domain = syntax.ascii_domain
        known = self._catch_all.peek(domain, _UNSET) if self._catch_all_check else False
        if known is not _UNSET:  # the common case once a domain is known: no extra task
            (result,) = await self._prober.probe(route.hosts, [recipient])
            return verdict_from_probe(based, result, known)
        catch_all_task = asyncio.ensure_future(self._is_catch_all(domain, route))
        (result,) = await self._prober.probe(route.hosts, [recipient])
        return verdict_from_probe(based, result, await catch_all_task)

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
