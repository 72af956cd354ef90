"""The world bench's greylisting: its servers' delay, and what it costs in the bound."""

from __future__ import annotations

import pytest

from bench.worldgen import (
    DomainSpec,
    Kind,
    ServerSpec,
    WorldPlan,
    build_world,
    generate,
    schedule_bound,
)

pytestmark = pytest.mark.unit


def _plan() -> WorldPlan:
    servers = [
        ServerSpec("127.0.1.1", Kind.NORMAL, "p-1.net", 0.1, 2, 50),
        ServerSpec("127.0.1.2", Kind.GREYLIST, "p-2.net", 0.2, 1, 100),
    ]
    plan = WorldPlan(1, 1.1, 30.0, {s.ip: s for s in servers}, [], {}, {})
    plan.hosts = {"mx.a.com": "127.0.1.1", "mx.b.com": "127.0.1.2"}
    plan.domains = [
        DomainSpec("a.com", 1, 999, Kind.NORMAL, [(10, "mx.a.com")], "127.0.1.1"),
        DomainSpec("b.com", 2, 400, Kind.GREYLIST, [(10, "mx.b.com")], "127.0.1.2"),
    ]
    return plan


def test_a_greylisting_server_needs_both_asks_and_the_delay_between() -> None:
    bound = schedule_bound(_plan(), retry_delay=2.0, smtp_timeout=3.0)
    # a.com: 1,000 probes at 2 x 50 a round trip: 0.1 * (2 + 10) = 1.2
    # b.com: 401 probes at 1 x 100: first round 0.2 * (2 + 5) = 1.4; the last retry is sent
    # the delay after the last 450 and takes one more round trip: 0.2 * (3 + 5) + 2 = 3.6
    assert [load.seconds for load in bound.loads] == pytest.approx([1.4, 1.2])
    assert bound.greylist_floor == pytest.approx(3.6)
    assert bound.seconds == pytest.approx(3.6)  # not 1.4 + 2: the retries need their round
    assert bound.strict == pytest.approx(3.6)


def test_the_greylist_floor_stays_under_a_slower_normal_server() -> None:
    plan = _plan()
    plan.domains[1].addresses = 10
    bound = schedule_bound(plan, retry_delay=2.0, smtp_timeout=3.0)
    assert bound.greylist_floor == pytest.approx(0.2 * (3 + 1) + 2.0)
    assert bound.seconds == pytest.approx(1.2 + 2.0)  # the slowest server plus the delay
    # a.com does not greylist: the delay is not part of what it needs
    assert bound.strict == pytest.approx(max(1.2, 0.2 * (3 + 1) + 2.0))


def test_only_the_greylisting_servers_get_the_greylist_delay() -> None:
    plan = generate(2_000, 60, 40, 3)
    world = build_world(plan, greylist_delay=1.5)
    grey = [ip for ip, spec in plan.servers.items() if spec.kind is Kind.GREYLIST]
    assert grey
    for ip, spec in plan.servers.items():
        if spec.kind is Kind.REFUSED:
            continue
        assert world.smtp(ip).behaviour.greylist_delay == (1.5 if ip in grey else 0.0)
    assert build_world(plan).smtp(grey[0]).behaviour.greylist_delay == 0.0
