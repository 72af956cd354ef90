"""The engine's decisions on fakes: what a long-running worker remembers, and catch-all."""

from __future__ import annotations

import asyncio

import pytest

from mailvet.domain.smtp_reply import Reply
from mailvet.domain.verdict import RESULT_COLUMNS, Check, Reason
from mailvet.pipeline.engine import Engine
from tests.fakes import ACCEPT, UNKNOWN, FakeProber, FakeResolver

pytestmark = pytest.mark.pipeline

TEMPFAIL = Reply(451, "4.3.0", "Temporary lookup failure")


async def test_an_unknown_verdict_is_not_kept_for_later_jobs() -> None:
    answers = iter([TEMPFAIL, ACCEPT])
    prober = FakeProber(lambda rcpt: UNKNOWN if rcpt.startswith("mailvet-") else next(answers))
    now = [0.0]  # the engine's clock, moved by the test instead of waiting for it
    engine = Engine(
        FakeResolver(), prober, unknown_ttl=0.05, verdict_ttl=3600, clock=lambda: now[0]
    )
    first = await engine.check("ann@example.com")
    assert first.reason is Reason.GREYLISTED
    now[0] += 0.1
    second = await engine.check("ann@example.com")
    assert second.reason is Reason.ACCEPTED  # asked again, not the stale unknown
    third = await engine.check("ann@example.com")
    assert third.reason is Reason.ACCEPTED
    assert prober.recipients.count("ann@example.com") == 2  # a known answer is kept


async def test_an_open_catch_all_question_means_no_deliverable() -> None:
    # the random mailbox only ever gets "try later": the domain may accept anyone
    prober = FakeProber(lambda rcpt: TEMPFAIL if rcpt.startswith("mailvet-") else ACCEPT)
    engine = Engine(FakeResolver(), prober)
    verdict = await engine.check("ann@example.com")
    assert (verdict.status, verdict.reason) == ("unknown", "greylisted")
    assert verdict.catch_all is None  # not established: an empty cell, null in the API
    assert verdict.columns()[RESULT_COLUMNS.index("mailvet_catch_all")] == ""


async def test_catch_all_domains_are_risky_and_others_deliverable() -> None:
    engine = Engine(FakeResolver(), FakeProber(lambda rcpt: ACCEPT))
    verdict = await engine.check("ann@example.com")
    assert (verdict.reason, verdict.catch_all) == (Reason.CATCH_ALL, True)
    strict = Engine(FakeResolver(), FakeProber())
    verdict = await strict.check("ann@example.com")
    assert (verdict.reason, verdict.catch_all) == (Reason.ACCEPTED, False)
    verdict = await strict.check("ann@example.com", Check.DNS)
    assert (verdict.reason, verdict.catch_all) == (Reason.NOT_CHECKED, None)  # never asked


async def test_the_catch_all_field_is_the_domains_answer_whatever_the_mailbox_said() -> None:
    def answer(rcpt: str) -> Reply:
        return ACCEPT if rcpt.startswith(("mailvet-", "ann@")) else TEMPFAIL

    engine = Engine(FakeResolver(), FakeProber(answer))
    ann, bob = await engine.check_many(["ann@example.com", "bob@example.com"], Check.SMTP)
    assert (ann.reason, ann.catch_all) == (Reason.CATCH_ALL, True)
    assert (bob.reason, bob.catch_all) == (Reason.GREYLISTED, True)  # the domain did answer
    strict = Engine(FakeResolver(), FakeProber(lambda rcpt: UNKNOWN))
    (nobody,) = await strict.check_many(["nobody@example.com"], Check.SMTP)
    assert (nobody.reason, nobody.catch_all) == (Reason.MAILBOX_NOT_FOUND, False)


async def test_with_the_catch_all_check_off_the_field_is_not_established() -> None:
    prober = FakeProber(lambda rcpt: ACCEPT)  # would be a catch-all, were it asked
    engine = Engine(FakeResolver(), prober, catch_all_check=False)
    verdict = await engine.check("ann@example.com")
    assert (verdict.reason, verdict.catch_all) == (Reason.ACCEPTED, None)
    assert prober.recipients == ["ann@example.com"]  # no random mailbox asked


async def test_verdicts_that_are_not_kept_still_answer_their_rows() -> None:
    prober = FakeProber(lambda rcpt: TEMPFAIL)
    engine = Engine(FakeResolver(), prober, unknown_ttl=0)  # unknowns not kept at all
    verdicts = await engine.check_many(["a@one.com", "b@two.com", "a@one.com"], Check.SMTP)
    assert [v.reason for v in verdicts] == [Reason.GREYLISTED] * 3


async def test_one_domain_is_one_probe_call_and_duplicates_in_flight_are_shared() -> None:
    class CountingProber(FakeProber):
        calls: list[list[str]] = []

        async def probe(self, hosts, recipients, *, solo=False):  # type: ignore[no-untyped-def]
            self.calls.append(list(recipients))
            await asyncio.sleep(0.05)
            return await super().probe(hosts, recipients, solo=solo)

    prober = CountingProber()
    engine = Engine(FakeResolver(), prober)
    first, second = await asyncio.gather(
        engine.check_many([f"u{i}@one.com" for i in range(5)], Check.SMTP),
        engine.check_many(["u1@one.com", "u2@one.com"], Check.SMTP),  # another chunk, same rows
    )
    assert [v.reason for v in first + second] == [Reason.ACCEPTED] * 7
    real = [call for call in prober.calls if not call[0].startswith("mailvet-")]
    assert real == [[f"u{i}@one.com" for i in range(5)]]  # one call, no address twice
