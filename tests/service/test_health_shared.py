"""A running process's shared health answers (mailvet.health.shared_answers): one probe per
FRESH seconds whatever the number of /health requests, never two of the same roles at once,
and an outage seen once the answer is older than that."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.health import FRESH, healthy, shared_answers
from tests.service.test_health import make_deps

pytestmark = pytest.mark.unit


class GatedBus(MemoryBus):
    """A bus whose ping answers `answer` once `gate` is set (open from the start unless a test
    closes it), counting the pings."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = True
        self.pings = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def ping(self) -> bool:
        self.pings += 1
        await self.gate.wait()
        return self.answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _until(condition: object, limit: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0)


async def test_many_callers_share_one_probe_until_it_is_older_than_fresh(tmp_path: Path) -> None:
    bus = GatedBus()
    deps = await make_deps(tmp_path, bus=bus)
    clock = Clock()
    try:
        with shared_answers(deps, clock=clock) as shared:
            first = await asyncio.gather(*(healthy(deps, ["worker"]) for _ in range(50)))
            assert {answer.status for answer in first} == {"ok"}
            assert (bus.pings, shared.probes) == (1, 1)
            bus.answer = False  # the bus goes down
            clock.now += FRESH * 0.9
            assert (await healthy(deps, ["worker"])).status == "ok"  # still the fresh answer
            assert bus.pings == 1
            clock.now += FRESH * 0.2
            down = await healthy(deps, ["worker"])
            assert down.status == "unavailable" and down.checks == {"bus": "failed"}
            assert bus.pings == 2
            # other roles are asked for on their own (their answer holds other ports)
            web = await healthy(deps, ["web"])
            assert web.roles == ["web"] and web.checks["bus"] == "failed"
            assert shared.probes == 3
        # closed: every call probes again
        await healthy(deps, ["worker"])
        await healthy(deps, ["worker"])
        assert bus.pings == 5
    finally:
        await deps.close()


async def test_callers_wait_for_the_probe_in_flight_and_one_giving_up_stops_nobody(
    tmp_path: Path,
) -> None:
    bus = GatedBus()
    bus.gate.clear()
    deps = await make_deps(tmp_path, bus=bus)
    try:
        with shared_answers(deps, clock=Clock()) as shared:
            callers = [asyncio.ensure_future(healthy(deps, ["worker"])) for _ in range(10)]
            await _until(lambda: bus.pings == 1)
            for _ in range(20):  # the others are all waiting by now
                await asyncio.sleep(0)
            callers[0].cancel()  # a request that went away
            bus.gate.set()
            answers = await asyncio.gather(*callers[1:])
            assert {answer.status for answer in answers} == {"ok"}
            assert callers[0].cancelled()
            assert (bus.pings, shared.probes) == (1, 1)
    finally:
        await deps.close()
