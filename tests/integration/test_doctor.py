"""`mailvet doctor` against the test mail world: a good identity passes, each bad one says
what to fix. Also the PTR records of the world's DNS server, which the doctor relies on."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import dns.asyncresolver
import dns.resolver
import pytest

from mailvet import doctor
from mailvet.settings import load_settings
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld

pytestmark = pytest.mark.integration

HELO = "probe.mailvet-test.com"
HELO_IP = "127.0.0.20"
LINE = re.compile(r"^(ok|warn|fail)\s{2,}([^:]+): (.+?)(?: — fix: (.+))?$")


@pytest.fixture(scope="module")
def world() -> Iterator[MailWorld]:
    world = MailWorld()
    zone = world.zone
    # our identity: MAIL FROM domain with MX, HELO name with A and matching PTR
    zone.add("mailvet-test.com", mx=[(10, "mx.mailvet-test.com")])
    zone.add("mx.mailvet-test.com", a=["127.0.0.21"])
    zone.add(HELO, a=[HELO_IP])
    zone.add_ptr(HELO_IP, HELO)
    # bad identities
    zone.add("aonly-sender.com", a=["127.0.0.21"])
    zone.add("nullmx-sender.com", mx=[(0, ".")])
    zone.add("deadmx-sender.com", mx=[(10, "mx.deadmx-sender.com")])  # the MX host has no A
    zone.blackhole("slowdns-sender.com")
    zone.add("noptr.mailvet-test.com", a=["127.0.0.22"])
    zone.add("otherptr.mailvet-test.com", a=["127.0.0.23"])
    zone.add_ptr("127.0.0.23", "host-23.isp.example.com")
    zone.add("noaddress.mailvet-test.com", txt=["v=spf1 -all"])
    # probe domains: a greeting MX, a refusing one, a silent one, an unwelcoming one
    for name, ip in [
        ("probe-ok.com", "127.0.0.24"),
        ("probe-refused.com", "127.0.0.25"),
        ("probe-blackhole.com", "127.0.0.26"),
        ("probe-unwelcome.com", "127.0.0.27"),
        ("probe-busy.com", "127.0.0.28"),
    ]:
        zone.add(name, mx=[(10, f"mx.{name}")])
        zone.add(f"mx.{name}", a=[ip])
    world.add_smtp("127.0.0.24", SmtpBehaviour(hostname="mx.probe-ok.com"))
    world.add_smtp("127.0.0.26", SmtpBehaviour(blackhole=True))
    world.add_smtp(
        "127.0.0.27", SmtpBehaviour(greeting="554 5.7.1 {host} your IP is on a blocklist")
    )
    world.add_smtp("127.0.0.28", SmtpBehaviour(greeting="421 4.3.2 Service busy, try later"))
    zone.add("probe-private.com", mx=[(10, "mx.probe-ok.com")])
    # addresses the engine never connects to though Python calls them neither private,
    # loopback nor link-local: carrier-grade NAT space and multicast
    zone.add("probe-reserved.com", mx=[(10, "mx.probe-reserved.com")])
    zone.add("mx.probe-reserved.com", a=["100.64.0.25", "224.0.0.25"])
    # a dead first MX, a greeting second one: the check goes on to the next address
    zone.add("probe-backup.com", mx=[(10, "mx.probe-refused.com"), (20, "mx.probe-ok.com")])
    with world:
        yield world


def diagnose(
    world: MailWorld, probe: str = "probe-ok.com", **env: str
) -> tuple[int, list[tuple[str, ...]], str]:
    environ = {**world.env(), "MAILVET_DNS_TIMEOUT": "1.0", "MAILVET_HELO_NAME": HELO, **env}
    out = io.StringIO()
    code = doctor.run(load_settings(environ), probe_domain=probe, out=out)
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[-1] == (
        "nothing to fix"
        if code == 0
        else f"{sum(line.startswith('fail') for line in lines)} problem(s) to fix"
    )
    parsed = []
    for line in lines[:-1]:
        match = LINE.match(line)
        assert match, line
        parsed.append(tuple(g or "" for g in match.groups()))
    return code, parsed, text


def by_check(findings: list[tuple[str, ...]], check: str) -> list[tuple[str, ...]]:
    return [f for f in findings if f[1] == check]


def test_good_identity_needs_no_fix(world: MailWorld) -> None:
    code, findings, text = diagnose(world)
    assert code == 0, text
    assert [(level, check) for level, check, *_ in findings] == [
        ("ok", "MAIL FROM"),
        ("ok", "HELO"),
        ("ok", "HELO reverse DNS"),
        ("ok", f"outbound port {world.smtp_port}"),
        ("warn", "allow_private"),
    ]
    assert "mx.mailvet-test.com" in by_check(findings, "MAIL FROM")[0][2]
    assert "verify@" not in text  # the sender address itself is not printed
    assert f"PTR of {HELO_IP} is {HELO}" in by_check(findings, "HELO reverse DNS")[0][2]
    assert "220 mx.probe-ok.com" in by_check(findings, f"outbound port {world.smtp_port}")[0][2]
    assert "MAILVET_SMTP_ALLOW_PRIVATE" in by_check(findings, "allow_private")[0][3]


def test_null_reverse_path_is_fine(world: MailWorld) -> None:
    code, findings, _ = diagnose(world, MAILVET_MAIL_FROM="")
    assert code == 0
    assert by_check(findings, "MAIL FROM") == [
        ("ok", "MAIL FROM", "null reverse-path <>, accepted by every server", "")
    ]


@pytest.mark.parametrize(
    ("mail_from", "level", "finding", "fix"),
    [
        (
            "verify@no-such-sender-zz.com",
            "fail",
            "does not exist (NXDOMAIN)",
            "a domain that has MX",
        ),
        ("verify@nullmx-sender.com", "fail", "Null MX", "MAILVET_MAIL_FROM empty"),
        (
            "verify@aonly-sender.com",
            "warn",
            "no MX, only an address record",
            "publish an MX record",
        ),
        ("verify@deadmx-sender.com", "fail", "no MX host has an address", "add A records"),
        ("verify@slowdns-sender.com", "fail", "timed out", "MAILVET_DNS_SERVERS"),
        ("not-an-address", "fail", "not an address", "MAILVET_MAIL_FROM"),
    ],
)
def test_bad_mail_from(
    world: MailWorld, mail_from: str, level: str, finding: str, fix: str
) -> None:
    code, findings, text = diagnose(world, MAILVET_MAIL_FROM=mail_from)
    assert code == (0 if level == "warn" else 1), text
    [(got_level, _, got_finding, got_fix)] = by_check(findings, "MAIL FROM")
    assert got_level == level
    assert finding in got_finding
    assert fix in got_fix


def test_helo_without_ptr(world: MailWorld) -> None:
    code, findings, text = diagnose(world, MAILVET_HELO_NAME="noptr.mailvet-test.com")
    assert code == 1, text
    assert by_check(findings, "HELO")[0][0] == "ok"
    [(level, _, finding, fix)] = by_check(findings, "HELO reverse DNS")
    assert level == "fail"
    assert finding == "127.0.0.22 has no PTR record"
    assert "set its PTR record to noptr.mailvet-test.com" in fix


def test_helo_whose_ptr_names_another_host(world: MailWorld) -> None:
    code, findings, text = diagnose(world, MAILVET_HELO_NAME="otherptr.mailvet-test.com")
    assert code == 1, text
    [(level, _, finding, fix)] = by_check(findings, "HELO reverse DNS")
    assert level == "fail"
    assert "names host-23.isp.example.com, not otherptr.mailvet-test.com" in finding
    assert "set its PTR record to otherptr.mailvet-test.com" in fix
    assert "MAILVET_HELO_NAME to host-23.isp.example.com" in fix


@pytest.mark.parametrize(
    ("helo", "finding", "fix"),
    [
        (
            "ghost.mailvet-test.com",
            "ghost.mailvet-test.com does not exist (NXDOMAIN)",
            "add an A record",
        ),
        ("noaddress.mailvet-test.com", "has no A/AAAA record", "add an A record"),
        ("localhost", "localhost is not a fully-qualified domain name", "MAILVET_HELO_NAME"),
        ("mailhost", "mailhost is not a fully-qualified domain name", "MAILVET_HELO_NAME"),
        ("127.0.0.20", "is not a fully-qualified domain name", "MAILVET_HELO_NAME"),
    ],
)
def test_helo_that_does_not_resolve(world: MailWorld, helo: str, finding: str, fix: str) -> None:
    code, findings, text = diagnose(world, MAILVET_HELO_NAME=helo)
    assert code == 1, text
    [(level, _, got_finding, got_fix)] = by_check(findings, "HELO")
    assert level == "fail"
    assert finding in got_finding
    assert fix in got_fix
    assert by_check(findings, "HELO reverse DNS") == []


@pytest.mark.parametrize(
    ("probe", "level", "finding", "fix"),
    [
        ("probe-refused.com", "fail", "refused", "seems blocked"),
        ("probe-blackhole.com", "fail", "connected, but no greeting within 1 s", "intercept port"),
        ("probe-unwelcome.com", "fail", "greets with 554 5.7.1", "blocklists"),
        ("probe-busy.com", "warn", "greets with 421", "try again later"),
        ("no-such-probe-zz.com", "fail", "cannot find a mail server", "--probe-domain"),
        ("slowdns-sender.com", "fail", "(timeout)", "MAILVET_DNS_SERVERS"),
    ],
)
def test_outbound_port_25_problems(
    world: MailWorld, probe: str, level: str, finding: str, fix: str
) -> None:
    code, findings, text = diagnose(world, probe=probe)
    assert code == (0 if level == "warn" else 1), text
    [(got_level, _, got_finding, got_fix)] = by_check(findings, f"outbound port {world.smtp_port}")
    assert got_level == level
    assert finding in got_finding
    assert fix in got_fix


def test_a_dead_first_mx_is_not_a_blocked_port(world: MailWorld) -> None:
    code, findings, text = diagnose(world, probe="probe-backup.com")
    assert code == 0, text
    [(level, _, finding, _fix)] = by_check(findings, f"outbound port {world.smtp_port}")
    assert level == "ok"
    assert finding.startswith("mx.probe-ok.com [127.0.0.24]")


def test_private_probe_mx_is_skipped_unless_allowed(world: MailWorld) -> None:
    code, findings, text = diagnose(
        world, probe="probe-private.com", MAILVET_SMTP_ALLOW_PRIVATE="false"
    )
    assert code == 1, text
    [(level, _, finding, _fix)] = by_check(findings, f"outbound port {world.smtp_port}")
    assert (level, finding) == (
        "fail",
        "the MX hosts of probe-private.com have only private addresses",
    )
    assert by_check(findings, "allow_private") == []


def test_a_probe_mx_the_engine_would_refuse_is_skipped_too(world: MailWorld) -> None:
    # doctor uses the engine's own rule (domain/network.is_public_address): it tried to
    # connect to 100.64.0.25 and 224.0.0.25 before, where the prober never goes
    code, findings, text = diagnose(
        world, probe="probe-reserved.com", MAILVET_SMTP_ALLOW_PRIVATE="false"
    )
    assert code == 1, text
    [(level, _, finding, _fix)] = by_check(findings, f"outbound port {world.smtp_port}")
    assert (level, finding) == (
        "fail",
        "the MX hosts of probe-reserved.com have only private addresses",
    )


def test_unreachable_dns_is_a_finding_not_a_traceback(world: MailWorld) -> None:
    code, findings, text = diagnose(
        world, MAILVET_DNS_SERVERS="127.0.0.1:9", MAILVET_DNS_TIMEOUT="0.3"
    )
    assert code == 1, text
    assert "Traceback" not in text
    assert {level for level, check, *_ in findings if check != "allow_private"} == {"fail"}
    assert "MAILVET_DNS_SERVERS" in by_check(findings, "HELO")[0][3]


def test_stdout_is_the_default_output(world: MailWorld, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {**world.env(), "MAILVET_HELO_NAME": HELO}
    assert doctor.run(load_settings(environ), probe_domain="probe-ok.com") == 0
    assert capsys.readouterr().out.endswith("nothing to fix\n")


# -- the world's DNS server answers PTR queries ------------------------------------------


def resolver_for(world: MailWorld) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = world.dns_port
    resolver.lifetime = 1.0
    return resolver


async def test_ptr_records_are_served(world: MailWorld) -> None:
    answer = await resolver_for(world).resolve("20.0.0.127.in-addr.arpa", "PTR")
    assert [r.to_text() for r in answer] == [f"{HELO}."]
    assert world.zone.add_ptr("::1", "v6.example.com").endswith(".ip6.arpa")
    answer = await resolver_for(world).resolve_address("::1")
    assert [r.to_text() for r in answer] == ["v6.example.com."]


async def test_reverse_names_without_ptr(world: MailWorld) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):
        await resolver_for(world).resolve("22.0.0.127.in-addr.arpa", "PTR")
    with pytest.raises(dns.resolver.NoAnswer):  # the name exists: NODATA for other types
        await resolver_for(world).resolve("20.0.0.127.in-addr.arpa", "A")
