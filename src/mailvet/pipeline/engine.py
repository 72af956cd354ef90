"""The validation engine: syntax -> risk lists -> DNS -> SMTP, for a batch of addresses.

Pure decisions live in mailvet.domain (syntax, risk, SMTP reply meaning); this module
orders them, groups addresses by domain, and talks to the Resolver and SmtpProber ports.
Duplicates are validated once: verdicts are remembered per normalized address, and
concurrent requests for the same address share one probe.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict, defaultdict
from collections.abc import Sequence

import structlog

from mailvet.domain.address import Syntax, check_syntax
from mailvet.domain.ports import MailRoute, ProbeFailure, ProbeResult, Resolver, RouteKind, SmtpProber
from mailvet.domain.risk import domain_risk, is_role
from mailvet.domain.smtp_reply import REASON_OF, Outcome, classify_rcpt
from mailvet.domain.verdict import STATUS_OF, Check, Reason, Verdict

log = structlog.get_logger(__name__)

INVALID = Verdict(STATUS_OF[Reason.INVALID_SYNTAX], Reason.INVALID_SYNTAX)

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
    ProbeFailure.GREYLISTED: Reason.GREYLISTED,
    ProbeFailure.SMTP_ERROR: Reason.SMTP_ERROR,
}


def _verdict(reason: Reason, base: Verdict, **changes: object) -> Verdict:
    return Verdict(
        STATUS_OF[reason],
        reason,
        base.normalized,
        base.suggestion,
        base.disposable,
        base.role,
        base.free,
        changes.get("catch_all", base.catch_all),  # type: ignore[arg-type]
        changes.get("mx", base.mx),  # type: ignore[arg-type]
        changes.get("smtp_code", base.smtp_code),  # type: ignore[arg-type]
    )


def offline_verdict(syntax: Syntax) -> Verdict:
    """The verdict from syntax and lists alone (no network): risky if disposable."""
    if not syntax.valid:
        return INVALID
    risk = domain_risk(syntax.ascii_domain)
    reason = Reason.DISPOSABLE if risk.disposable else Reason.NOT_CHECKED
    return Verdict(
        STATUS_OF[reason],
        reason,
        syntax.normalized,
        f"{syntax.local}@{risk.suggestion}" if risk.suggestion else "",
        risk.disposable,
        is_role(syntax.local),
        risk.free,
    )


def verdict_from_probe(base: Verdict, result: ProbeResult, catch_all: bool) -> Verdict:
    """Turn what the MX said into the verdict (catch-all turns 'accepted' into risky)."""
    code = result.reply.code if result.reply is not None else None
    if result.failure is not None:
        return _verdict(_FAILURE_REASON[result.failure], base, mx=result.mx, smtp_code=code, catch_all=catch_all)
    assert result.reply is not None
    outcome = classify_rcpt(result.reply)
    reason = REASON_OF[outcome]
    if outcome is Outcome.ACCEPTED and catch_all:
        reason = Reason.CATCH_ALL
    return _verdict(reason, base, mx=result.mx, smtp_code=code, catch_all=catch_all)


def syntax_verdicts(addresses: Sequence[str]) -> list[Verdict]:
    """Verdicts without the network: syntax and lists only."""
    return [offline_verdict(check_syntax(address.strip())) for address in addresses]


class Engine:
    def __init__(
        self,
        resolver: Resolver,
        prober: SmtpProber,
        *,
        catch_all_check: bool = True,
        cache_size: int = 200_000,
    ) -> None:
        self._resolver = resolver
        self._prober = prober
        self._catch_all_check = catch_all_check
        self._catch_all: dict[str, asyncio.Future[bool]] = {}
        self._cache_size = cache_size
        self._verdicts: OrderedDict[tuple[str, Check], asyncio.Future[Verdict]] = OrderedDict()

    async def check(self, address: str, checks: Check = Check.SMTP) -> Verdict:
        return (await self.check_many([address], checks))[0]

    async def check_many(self, addresses: Sequence[str], checks: Check) -> list[Verdict]:
        """One verdict per address, in order."""
        offline = syntax_verdicts(addresses)
        if checks is Check.SYNTAX:
            return offline
        out = list(offline)
        todo: dict[tuple[str, Check], list[int]] = defaultdict(list)
        for index, verdict in enumerate(offline):
            if verdict.reason is Reason.NOT_CHECKED or verdict.reason is Reason.DISPOSABLE:
                todo[(verdict.normalized, checks)].append(index)
        keys = list(todo)
        results = await asyncio.gather(*(self._remembered(key, offline[todo[key][0]]) for key in keys))
        for key, verdict in zip(keys, results, strict=True):
            for index in todo[key]:
                out[index] = verdict
        return out

    async def _remembered(self, key: tuple[str, Check], base: Verdict) -> Verdict:
        """Validate once per (address, depth); share in-flight work and finished verdicts."""
        future = self._verdicts.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._verdicts[key] = future
            try:
                future.set_result(await self._network_verdict(base, key[1]))
            except BaseException as exc:
                del self._verdicts[key]
                future.set_exception(exc)
                future.exception()
                raise
            while len(self._verdicts) > self._cache_size:
                oldest, first = next(iter(self._verdicts.items()))
                if not first.done():
                    break
                del self._verdicts[oldest]
            return future.result()
        self._verdicts.move_to_end(key)
        return await asyncio.shield(future)

    async def _network_verdict(self, base: Verdict, checks: Check) -> Verdict:
        local, _, domain = base.normalized.rpartition("@")
        ascii_domain = check_syntax(base.normalized).ascii_domain or domain
        route = await self._resolver.mail_route(ascii_domain)
        if route.kind not in (RouteKind.MX, RouteKind.IMPLICIT):
            return _verdict(_ROUTE_REASON[route.kind], base)
        based = _verdict(base.reason, base, mx=route.hosts[0])
        if base.disposable or checks is Check.DNS:
            return based
        if not local.isascii():  # would need SMTPUTF8 end to end: do not guess
            return _verdict(Reason.NOT_CHECKED, based)
        recipient = f"{local}@{ascii_domain}"
        catch_all_task = asyncio.ensure_future(self._is_catch_all(ascii_domain, route))
        (result,) = await self._prober.probe(route.hosts, [recipient])
        catch_all = await catch_all_task
        return verdict_from_probe(based, result, catch_all)

    async def _is_catch_all(self, domain: str, route: MailRoute) -> bool:
        """Does the domain accept a random mailbox? Asked once per domain."""
        if not self._catch_all_check:
            return False
        future = self._catch_all.get(domain)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._catch_all[domain] = future
            probe = f"mailvet-{secrets.token_hex(6)}@{domain}"
            try:
                (result,) = await self._prober.probe(route.hosts, [probe])
                answer = result.reply is not None and classify_rcpt(result.reply) is Outcome.ACCEPTED
            except Exception:
                answer = False
                log.exception("catch_all_check_failed", domain=domain)
            future.set_result(answer)
        return await asyncio.shield(future)

    async def close(self) -> None:
        await self._prober.close()
