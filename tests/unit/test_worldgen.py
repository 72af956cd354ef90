"""The generated mail world of bench/world_bench.py, and its schedule bound (no sockets)."""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from bench.worldgen import (
    DELIVERABLE,
    LIVE,
    MAX_BATCH,
    NOT_FOUND,
    OK,
    REFUSED,
    TIMEOUT,
    DomainSpec,
    FastDns,
    Kind,
    ServerSpec,
    WorldPlan,
    build_world,
    dns_names,
    generate,
    schedule_bound,
    write_csv,
    zipf_counts,
)
from mailvet.domain.risk import domain_risk, is_role
from tests.mailworld.smtp_server import GREYLISTED

pytestmark = pytest.mark.unit

ADDRESSES, DOMAINS, SERVERS = 1_500, 60, 12


@pytest.fixture(scope="module")
def plan() -> WorldPlan:
    return generate(ADDRESSES, DOMAINS, SERVERS, seed=3)


def test_zipf_counts_sum_exactly_each_domain_has_one_and_the_head_is_heavy() -> None:
    counts = zipf_counts(10_000, 200, 1.1)
    assert sum(counts) == 10_000
    assert min(counts) >= 1
    assert counts == sorted(counts, reverse=True)
    assert sum(counts[:10]) > 0.4 * 10_000
    assert zipf_counts(5, 5, 1.1) == [1] * 5
    with pytest.raises(ValueError):
        zipf_counts(4, 5, 1.1)


def test_plan_sizes_and_determinism(plan: WorldPlan) -> None:
    assert len(plan.expected) == ADDRESSES
    assert len(plan.domains) == DOMAINS
    assert len(plan.servers) == SERVERS
    assert sum(d.addresses for d in plan.domains) == ADDRESSES
    assert [d.rank for d in plan.domains] == list(range(1, DOMAINS + 1))
    again = generate(ADDRESSES, DOMAINS, SERVERS, seed=3)
    assert list(again.expected.items()) == list(plan.expected.items())
    assert list(generate(ADDRESSES, DOMAINS, SERVERS, seed=4).expected) != list(plan.expected)
    locals_ = [address.rpartition("@")[0] for address in plan.expected]
    assert len(set(locals_)) == len(locals_)  # servers key mailboxes by local part


def test_every_kind_of_server_and_domain_is_present_and_specials_are_not_giants(
    plan: WorldPlan,
) -> None:
    assert set(Counter(s.kind for s in plan.servers.values())) == set(Kind)
    kinds = Counter(d.kind for d in plan.domains)
    assert set(kinds) == set(Kind)
    assert kinds[Kind.GREYLIST] == round(0.03 * DOMAINS) or kinds[Kind.GREYLIST] == 1
    assert plan.domains[0].kind is Kind.NORMAL
    assert plan.domains[0].addresses > 5 * plan.domains[-1].addresses
    for domain in plan.domains:
        first = plan.servers[plan.first_ip(domain)]
        if domain.kind is Kind.NORMAL:
            assert first.kind is Kind.NORMAL
        else:
            assert first.kind is domain.kind
            assert domain.rank > 1


def test_expected_verdicts_follow_the_server_that_answers(plan: WorldPlan) -> None:
    by_domain = {d.name: d for d in plan.domains}
    backups = 0
    for address, verdict in plan.expected.items():
        local, _, name = address.rpartition("@")
        domain = by_domain[name]
        if domain.answering_ip is None:
            want = TIMEOUT if domain.kind in (Kind.TARPIT, Kind.BLACKHOLE) else REFUSED
            assert verdict == want
            continue
        assert plan.servers[domain.answering_ip].kind in LIVE
        backups += domain.kind in (Kind.REFUSED, Kind.BLACKHOLE)
        exists = local in plan.mailboxes[domain.answering_ip]
        assert verdict == (DELIVERABLE if exists else NOT_FOUND)
    assert backups > 0  # some dead-MX domains are saved by their backup MX
    share = Counter(plan.expected.values())
    assert 0.8 < share[DELIVERABLE] / ADDRESSES < 0.95


def test_names_are_not_flagged_by_mailvets_risk_lists(plan: WorldPlan) -> None:
    for domain in plan.domains:
        risk = domain_risk(domain.name)
        assert not risk.disposable and not risk.free and not risk.suggestion, domain.name
    assert not any(is_role(address.rpartition("@")[0]) for address in plan.expected)


def test_many_mx_host_names_lead_to_one_server(plan: WorldPlan) -> None:
    names_per_ip = Counter(plan.hosts.values())
    assert max(names_per_ip.values()) > 3
    own = sum(any(host.endswith("." + d.name) for _, host in d.mx) for d in plan.domains)
    assert 0 < own < DOMAINS  # some name their own MX host, some the provider's
    assert any(len(d.mx) == 2 for d in plan.domains)


def test_built_world_answers_as_planned(plan: WorldPlan) -> None:
    world = build_world(plan)
    for domain in plan.domains:
        node = world.zone.lookup(domain.name)
        assert node is not None and sorted(node.mx) == sorted(domain.mx)
        for _, host in domain.mx:
            host_node = world.zone.lookup(host)
            assert host_node is not None and host_node.a == [plan.hosts[host]]
    for server_ip, spec in plan.servers.items():
        if spec.kind is Kind.REFUSED:
            with pytest.raises(KeyError):
                world.smtp(server_ip)
            continue
        behaviour = world.smtp(server_ip).behaviour
        assert behaviour.blackhole == (spec.kind is Kind.BLACKHOLE)
        assert behaviour.greylist_attempts == (1 if spec.kind is Kind.GREYLIST else 0)
        assert behaviour.latency == spec.latency
        assert behaviour.max_connections == spec.max_connections
        assert behaviour.max_recipients == spec.max_recipients
        if spec.kind is Kind.TARPIT:
            assert spec.latency == plan.tarpit_latency
        elif spec.kind in LIVE:
            assert 0.010 <= spec.latency <= 0.300
    by_domain = {d.name: d for d in plan.domains}
    for address, verdict in plan.expected.items():
        ip = by_domain[address.rpartition("@")[2]].answering_ip
        if ip is None:
            continue
        server = world.smtp(ip)
        first = server.rcpt_reply(address)
        if plan.servers[ip].kind is Kind.GREYLIST:
            assert first == GREYLISTED.replace("{rcpt}", address)
            first = server.rcpt_reply(address)
        assert first.startswith("250" if verdict == DELIVERABLE else "550 5.1.1"), address
        postmaster = f"postmaster@{address.rpartition('@')[2]}"
        replies = {server.rcpt_reply(postmaster), server.rcpt_reply(postmaster)}
        assert OK in replies  # RFC 5321 4.5.1 (greylisted once on a greylisting server)


def test_csv_holds_every_address_once_shuffled(plan: WorldPlan, tmp_path: Path) -> None:
    path = tmp_path / "world.csv"
    write_csv(plan, path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    emails = [row["email"] for row in rows]
    assert sorted(emails) == sorted(plan.expected)
    assert emails != list(plan.expected)
    assert [row["id"] for row in rows[:3]] == ["1", "2", "3"]


def _server(ip: str, kind: Kind, latency: float, cap: int | None, rcpts: int | None) -> ServerSpec:
    return ServerSpec(ip, kind, f"p-{ip}.net", latency, cap, rcpts)


def _hand_plan(*, tarpit: bool = False, grey: bool = True) -> WorldPlan:
    servers = [
        _server("127.0.1.1", Kind.NORMAL, 0.1, 2, 50),
        _server("127.0.1.2", Kind.GREYLIST if grey else Kind.NORMAL, 0.2, 1, 200),
        _server("127.0.1.3", Kind.TARPIT, 30.0, None, None),
    ]
    plan = WorldPlan(1, 1.1, 30.0, {s.ip: s for s in servers}, [], {}, {})
    plan.hosts = {"mx.a.com": "127.0.1.1", "mx.b.com": "127.0.1.2", "mx.c.com": "127.0.1.3"}
    plan.domains = [
        DomainSpec("a.com", 1, 999, Kind.NORMAL, [(10, "mx.a.com")], "127.0.1.1"),
        DomainSpec(
            "b.com", 2, 150, Kind.GREYLIST if grey else Kind.NORMAL, [(10, "mx.b.com")], "127.0.1.2"
        ),
    ]
    if tarpit:
        plan.domains.append(DomainSpec("c.com", 3, 5, Kind.TARPIT, [(10, "mx.c.com")], None))
    return plan


def test_bound_is_the_slowest_server_plus_the_retry_delay() -> None:
    bound = schedule_bound(_hand_plan(), retry_delay=2.0, smtp_timeout=3.0)
    # a.com: 999 + 1 catch-all probe over 2 sessions x 50 RCPTs: 10 transactions of one
    # latency each after greeting and EHLO: 0.1 * (2 + 10)
    slowest = bound.slowest
    assert (slowest.ip, slowest.probes, slowest.sessions, slowest.batch) == (
        "127.0.1.1",
        1000,
        2,
        50,
    )
    assert slowest.seconds == pytest.approx(1.2)
    assert slowest.rate == pytest.approx(1000.0)
    # b.com: 151 probes, 1 session, R=200 capped at 100: 2 transactions, 0.2 * (2 + 2)
    other = bound.loads[1]
    assert (other.probes, other.batch) == (151, MAX_BATCH)
    assert other.seconds == pytest.approx(0.8)
    assert bound.retry_delay == 2.0
    assert bound.seconds == pytest.approx(1.2 + 2.0)


def test_bound_without_greylisting_adds_no_delay_and_counts_tar_pits_timeout() -> None:
    no_grey = schedule_bound(_hand_plan(grey=False), retry_delay=2.0, smtp_timeout=3.0)
    assert no_grey.retry_delay == 0.0 and no_grey.seconds == pytest.approx(1.2)
    pit = schedule_bound(_hand_plan(tarpit=True, grey=False), retry_delay=2.0, smtp_timeout=3.0)
    assert pit.timeout_floor == 3.0 and pit.seconds == pytest.approx(3.0)
    assert len(pit.loads) == 2  # the tar-pit answers nothing: no load of its own


def test_bound_options_client_sessions_and_catch_all() -> None:
    plan = _hand_plan(grey=False)
    one = schedule_bound(plan, retry_delay=0.0, smtp_timeout=3.0, client_sessions=1)
    assert one.slowest.sessions == 1
    assert one.slowest.seconds == pytest.approx(0.1 * (2 + math.ceil(1000 / 50)))
    bare = schedule_bound(plan, retry_delay=0.0, smtp_timeout=3.0, catch_all_probes=False)
    assert bare.slowest.probes == 999


def test_fast_dns_answers_what_the_world_answers_with_the_query_id(plan: WorldPlan) -> None:
    world = build_world(plan)
    fast = FastDns(world.zone, dns_names(plan))
    domain = plan.domains[0]
    query = DNSRecord.question(domain.name.upper(), "MX")  # case does not matter
    query.header.id = 4242
    reply = DNSRecord.parse(fast.answer(bytes(query.pack())))
    assert reply.header.id == 4242 and reply.header.rcode == RCODE.NOERROR
    assert sorted(
        (rr.rdata.preference, str(rr.rdata.label).rstrip(".")) for rr in reply.rr
    ) == sorted(domain.mx)
    host = domain.mx[0][1]
    a_query = DNSRecord.question(host, "A")
    a_query.header.rd = 0
    a_reply = DNSRecord.parse(fast.answer(bytes(a_query.pack())))
    assert [str(rr.rdata) for rr in a_reply.rr] == [plan.hosts[host]]
    assert a_reply.header.rd == 0 and a_reply.header.id == a_query.header.id
    nodata = DNSRecord.parse(fast.answer(bytes(DNSRecord.question(host, "AAAA").pack())))
    assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr
    # not precomputed: the world's resolver answers it in full
    missing = DNSRecord.parse(
        fast.answer(bytes(DNSRecord.question("no-such-name.com", "A").pack()))
    )
    assert missing.header.rcode == RCODE.NXDOMAIN
    txt = DNSRecord.parse(fast.answer(bytes(DNSRecord.question(domain.name, "TXT").pack())))
    assert txt.header.rcode == RCODE.NOERROR and txt.q.qtype == QTYPE.TXT
    assert fast.answer(b"\x00\x01garbage") is None
