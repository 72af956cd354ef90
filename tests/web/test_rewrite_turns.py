"""A segment download of the lists area rewrites the result in a thread, as the API's
filtered and converted results do (tests/web/test_api_jobs_v1.py): it waits for one of the
web process's REWRITES_AT_ONCE turns (web/jobs/results.py); the whole file needs none."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailvet.web.jobs.results import REWRITES_AT_ONCE, RewriteTurns, rewrite_turns
from tests.waiting import until
from tests.web.jobs_helpers import every_turn_held, lists_app
from tests.web.test_jobs_flow import LIST, download, run_list

pytestmark = pytest.mark.pipeline


async def test_a_segment_download_waits_for_a_turn_and_the_whole_file_does_not(
    tmp_path: Path,
) -> None:
    async with lists_app(tmp_path / "data") as lists:
        owner = await lists.browser(await lists.account("owner@example.org"))
        job = await run_list(owner, "contacts.csv", LIST, "text/csv")
        assert (await owner.events(job))[-1][0] == "done"
        turns = rewrite_turns(lists.app.state)
        async with every_turn_held(turns, REWRITES_AT_ONCE) as free_one:
            assert await download(owner, job, "all")  # no turn needed
            segment = asyncio.create_task(download(owner, job, "deliverable"))
            await until(lambda: turns.waiting == 1 or segment.done())
            assert not segment.done()

            await free_one()
            assert b"ann@example.com" in await segment
        assert (turns.running, turns.waiting) == (0, 0)


async def test_turns_are_taken_in_order_and_never_more_than_at_once() -> None:
    turns = RewriteTurns(at_once=2)
    inside: list[int] = []
    gates = [asyncio.Event() for _ in range(5)]

    async def rewrite(i: int) -> None:
        async with turns.turn():
            inside.append(i)
            assert turns.running <= 2
            await gates[i].wait()

    tasks = [asyncio.create_task(rewrite(i)) for i in range(5)]
    await until(lambda: len(inside) == 2)
    assert inside == [0, 1] and turns.waiting == 3
    gates[1].set()
    await until(lambda: len(inside) == 3)
    assert inside == [0, 1, 2] and turns.running == 2
    for gate in gates:
        gate.set()
    await asyncio.gather(*tasks)
    assert inside == [0, 1, 2, 3, 4]
    assert (turns.running, turns.waiting) == (0, 0)
