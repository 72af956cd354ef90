"""The engine's desks: one per job and domain, shared by the job's chunks.

A 100,000-address job in 1,000-row chunks over 2,000 domains is about 34,000 (chunk,
domain) pairs; each had its own task, route lookup, catch-all question and probe call. A
desk serves a domain's addresses from every chunk of the job, so the probe calls follow
the addresses (REACHED_BATCH at a time), not the chunks, and each chunk still hears its own
verdicts as they come.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from mailvet.domain.ports import MailRoute, ProbeResult, RouteKind
from mailvet.domain.smtp_reply import Reply
from mailvet.domain.verdict import Check, Reason, Verdict
from mailvet.domain.work import current_job
from mailvet.pipeline.engine import REACHED_BATCH, Engine
from tests.fakes import UNKNOWN, FakeProber, FakeResolver
from tests.waiting import until

pytestmark = pytest.mark.pipeline


class CallProber(FakeProber):
    """Records every mailbox probe call (recipients, job); `gate` holds them until set."""

    def __init__(self, *, fail: str = "") -> None:
        super().__init__()
        self.calls: list[tuple[list[str], str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._fail = fail
        self._called = asyncio.Event()

    async def called(self, times: int) -> None:
        """Return once `times` calls have been made."""
        while len(self.calls) < times:
            self._called.clear()
            await self._called.wait()

    async def probe(
        self, hosts: Sequence[str], recipients: Sequence[str], *, solo: bool = False
    ) -> list[ProbeResult]:
        if not solo:
            self.calls.append((list(recipients), current_job.get()))
            self._called.set()
            await self.gate.wait()
            if any(r.startswith(self._fail) for r in recipients if self._fail):
                raise RuntimeError("the prober broke")
        return await super().probe(hosts, recipients, solo=solo)


async def test_a_domains_addresses_from_many_chunks_share_probe_calls() -> None:
    prober = CallProber()
    resolver = FakeResolver()
    engine = Engine(resolver, prober)
    heard: dict[int, list[int]] = {n: [] for n in range(10)}

    def hears(n: int):  # type: ignore[no-untyped-def]
        def reached(indexes: list[int], verdicts: list[Verdict]) -> None:
            assert all(v.reason is Reason.ACCEPTED for v in verdicts)
            heard[n].extend(indexes)

        return reached

    chunks = [[f"u{n}-{i}@one.com" for i in range(2)] + [f"x{n}@two.com"] for n in range(10)]
    results = await asyncio.gather(
        *(engine.check_many(chunk, Check.SMTP, reached=hears(n)) for n, chunk in enumerate(chunks))
    )
    assert all(v.reason is Reason.ACCEPTED for result in results for v in result)
    assert all(sorted(heard[n]) == [0, 1, 2] for n in range(10))  # each chunk its own rows
    one = [rcpts for rcpts, _ in prober.calls if rcpts[0].endswith("@one.com")]
    # 20 addresses of one.com from 10 chunks: one call (was one per chunk)
    assert [len(rcpts) for rcpts in one] == [REACHED_BATCH]
    # the route is asked once per batch (the resolver's memo answers while it is fresh)
    assert resolver.asked.count("one.com") <= 2


async def test_addresses_that_come_while_a_call_is_under_way_are_asked_at_once() -> None:
    prober = CallProber()
    prober.gate.clear()
    engine = Engine(FakeResolver(), prober)
    first = asyncio.ensure_future(engine.check_many(["a@one.com"], Check.SMTP))
    await prober.called(1)  # (and held there)
    second = asyncio.ensure_future(engine.check_many(["b@one.com", "c@one.com"], Check.SMTP))
    await prober.called(2)  # asked without waiting for the first call to return
    assert [rcpts for rcpts, _ in prober.calls] == [["a@one.com"], ["b@one.com", "c@one.com"]]
    prober.gate.set()
    assert [v.reason for v in await second] == [Reason.ACCEPTED] * 2
    assert (await first)[0].reason is Reason.ACCEPTED


async def test_each_job_has_its_own_desk() -> None:
    """The prober serves the jobs queued at a server in turn (it reads current_job): a
    desk shared across jobs would put a small job's addresses in a big job's turn."""
    prober = CallProber()
    engine = Engine(FakeResolver(), prober)

    async def as_job(job: str, addresses: list[str]) -> list[Verdict]:
        token = current_job.set(job)
        try:
            return await engine.check_many(addresses, Check.SMTP)
        finally:
            current_job.reset(token)

    await asyncio.gather(as_job("big", ["a@one.com", "b@one.com"]), as_job("small", ["c@one.com"]))
    assert sorted(prober.calls) == [(["a@one.com", "b@one.com"], "big"), (["c@one.com"], "small")]


class GatedResolver(FakeResolver):
    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def mail_route(self, domain: str) -> MailRoute:
        await self.gate.wait()
        return await super().mail_route(domain)


async def test_a_cancelled_chunk_is_not_asked_and_the_others_go_on() -> None:
    prober = CallProber()
    resolver = GatedResolver()  # the desk waits for its route
    engine = Engine(resolver, prober)
    gone = asyncio.ensure_future(engine.check_many(["gone@one.com"], Check.SMTP))
    kept = asyncio.ensure_future(engine.check_many(["kept@one.com"], Check.SMTP))
    await until(lambda: sum(len(desk.items) for desk in engine._desks.values()) == 2)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    resolver.gate.set()
    assert (await kept)[0].reason is Reason.ACCEPTED
    assert [rcpts for rcpts, _ in prober.calls] == [["kept@one.com"]]
    # asked again later, it is probed (nothing of the cancelled chunk stayed in flight)
    assert (await engine.check_many(["gone@one.com"], Check.SMTP))[0].reason is Reason.ACCEPTED


async def test_a_failed_probe_call_fails_its_chunks_only() -> None:
    prober = CallProber(fail="bad")
    engine = Engine(FakeResolver(), prober)
    bad = engine.check_many(["bad@one.com"], Check.SMTP)
    good = engine.check_many(["good@two.com"], Check.SMTP)
    outcomes = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(outcomes[0], RuntimeError)
    assert not isinstance(outcomes[1], BaseException)
    assert outcomes[1][0].reason is Reason.ACCEPTED
    # the failure is not remembered: asked again, the address is probed again
    prober._fail = ""
    assert (await engine.check_many(["bad@one.com"], Check.SMTP))[0].reason is Reason.ACCEPTED


async def test_closing_the_engine_ends_its_desks() -> None:
    prober = CallProber()
    prober.gate.clear()
    engine = Engine(FakeResolver(), prober)
    waiting = asyncio.ensure_future(engine.check_many(["a@one.com"], Check.SMTP))
    await prober.called(1)
    await engine.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not engine._desks and not engine._in_flight


async def test_a_busy_desk_asks_again_what_has_expired() -> None:
    """A desk kept busy (a long-running worker, a steady stream of one domain) must not keep
    a route past its TTL nor an open catch-all question past `unknown_ttl`."""
    now = [0.0]
    hosts = ["mx-old.one.com"]
    solo_answers = iter([Reply(451, "4.7.1", "try later"), UNKNOWN])  # catch-all: open, then no

    class Prober(CallProber):
        async def probe(
            self, hosts: Sequence[str], recipients: Sequence[str], *, solo: bool = False
        ) -> list[ProbeResult]:
            if solo:
                return [ProbeResult(mx=hosts[0], reply=next(solo_answers))]
            return await super().probe(hosts, recipients)

    prober = Prober()
    prober.gate.clear()
    resolver = FakeResolver(lambda domain: MailRoute(RouteKind.MX, (hosts[0],)))
    engine = Engine(resolver, prober, unknown_ttl=10, clock=lambda: now[0])
    first = asyncio.ensure_future(engine.check_many(["a@one.com"], Check.SMTP))
    await prober.called(1)  # held: the desk stays
    hosts[0] = "mx-new.one.com"  # the domain moved
    now[0] = 11.0  # the open catch-all question has expired
    second = asyncio.ensure_future(engine.check_many(["b@one.com"], Check.SMTP))
    await prober.called(2)
    prober.gate.set()
    a, b = (await first)[0], (await second)[0]
    assert (a.reason, a.mx) == (Reason.GREYLISTED, "mx-old.one.com")  # catch-all unknown then
    assert (b.reason, b.mx) == (Reason.ACCEPTED, "mx-new.one.com")
