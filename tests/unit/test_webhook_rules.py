"""domain/webhooks.py and domain/network.py: the signature (a vector computed here with
hmac, the tolerance, a tampered body or secret), the event's shape, the backoff, and which
URLs and addresses a webhook may reach (server-side request forgery)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from datetime import UTC, datetime, timedelta

import pytest

from mailvet.domain import webhooks as rules
from mailvet.domain.network import is_public_address

pytestmark = pytest.mark.unit

SECRET = "whsec_test_0123456789abcdefghijklmnopqrstuvwxyzAB"
BODY = b'{"id":"evt_1","type":"job.completed"}'
T = 1796126400


def test_the_signature_is_stripes_scheme() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert rules.sign(SECRET, BODY, timestamp=T) == f"t={T},v1={expected}"
    # a fixed vector, so a change of scheme cannot pass unseen
    assert rules.sign("whsec_abc", b"{}", timestamp=1) == (
        "t=1,v1=" + hmac.new(b"whsec_abc", b"1.{}", hashlib.sha256).hexdigest()
    )


def test_verify_takes_a_good_signature_within_the_tolerance_only() -> None:
    header = rules.sign(SECRET, BODY, timestamp=T)
    assert rules.verify(SECRET, BODY, header, now=T)
    assert rules.verify(SECRET, BODY, header, now=T + 300)
    assert rules.verify(SECRET, BODY, header, now=T - 300)
    assert not rules.verify(SECRET, BODY, header, now=T + 301)  # a replay, later
    assert not rules.verify(SECRET, BODY, header, now=T - 301)
    assert not rules.verify(SECRET, BODY + b" ", header, now=T)
    assert not rules.verify(SECRET + "x", BODY, header, now=T)
    assert not rules.verify(SECRET, BODY, header.replace(f"t={T}", f"t={T + 1}"), now=T)
    assert not rules.verify(SECRET, BODY, "", now=T)
    assert not rules.verify(SECRET, BODY, f"t={T}", now=T)
    assert not rules.verify(SECRET, BODY, "v1=" + header.split("v1=")[1], now=T)
    # several v1 values (a receiver between two secrets): any one may match
    other = rules.sign("whsec_other", BODY, timestamp=T).split(",")[1]
    assert rules.verify(SECRET, BODY, f"{header},{other}", now=T)
    assert rules.verify("whsec_other", BODY, f"{header},{other}", now=T)


def test_secrets_are_new_and_high_entropy() -> None:
    made = {rules.new_secret() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert secret.startswith("whsec_") and len(secret) == 6 + 43
        assert len(secret) <= rules.SECRET_LENGTH


def test_the_event_body() -> None:
    created = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    body = rules.event_body(
        "job.failed", {"id": "j1", "status": "error_df"}, created=created, event_id="evt_x"
    )
    assert json.loads(body) == {
        "id": "evt_x",
        "type": "job.failed",
        "created": int(created.timestamp()),
        "version": 1,
        "data": {"job": {"id": "j1", "status": "error_df"}},
    }
    assert rules.event_key("job.completed", "j1") == "job.completed:j1"
    assert rules.new_event_id().startswith("evt_") and rules.new_event_id() != rules.new_event_id()


def test_the_backoff_doubles_to_an_hour_and_stops_at_24_hours() -> None:
    schedule = rules.RetrySchedule()
    created = datetime(2026, 12, 1, tzinfo=UTC)
    assert [schedule.delay(n) for n in (1, 2, 3, 7, 8, 100)] == [
        timedelta(seconds=30),
        timedelta(seconds=60),
        timedelta(seconds=120),
        timedelta(seconds=1920),
        timedelta(hours=1),
        timedelta(hours=1),
    ]
    assert schedule.next_attempt(attempts=1, created=created, now=created) == created + timedelta(
        seconds=30
    )
    late = created + timedelta(hours=23, minutes=50)
    assert schedule.next_attempt(attempts=30, created=created, now=late) == created + timedelta(
        hours=24
    )
    assert (
        schedule.next_attempt(attempts=31, created=created, now=created + timedelta(hours=24))
        is None
    )
    with pytest.raises(ValueError):
        schedule.delay(0)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("127.255.0.9", False),
        ("0.0.0.0", False),  # noqa: S104 - data
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # the cloud metadata service
        ("100.64.0.1", False),  # shared (carrier-grade NAT)
        ("192.0.2.1", False),  # documentation
        ("198.18.0.1", False),  # benchmarking
        ("224.0.0.251", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("[::1]", False),
        ("::", False),
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:10.0.0.1", False),
        ("::127.0.0.1", False),  # IPv4-compatible (deprecated)
        ("::8.8.8.8", False),
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("2001::1", False),  # Teredo
        ("not-an-ip", False),
        ("8.8.8.8", True),
        ("93.184.216.34", True),
        ("2607:f8b0:4004:c07::1a", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
    ],
)
def test_only_public_addresses_are_allowed(address: str, public: bool) -> None:
    assert is_public_address(address) is public
    ip = ipaddress.ip_address(address.strip("[]").split("%")[0]) if address != "not-an-ip" else None
    if ip is not None:
        assert rules.allowed(ip, allow_private=False) is public
        assert rules.allowed(ip, allow_private=True)


@pytest.mark.parametrize(
    ("url", "host", "port", "target"),
    [
        ("https://hooks.example.com/mailvet", "hooks.example.com", 443, "/mailvet"),
        ("HTTPS://Hooks.Example.COM", "hooks.example.com", 443, "/"),
        ("http://hooks.example:8080/a?b=c&d", "hooks.example", 8080, "/a?b=c&d"),
        ("https://bücher.example/x", "xn--bcher-kva.example", 443, "/x"),
        # numbers in other forms: read as the IPv4 address they are (inet_aton, WHATWG)
        ("http://2130706433/", "127.0.0.1", 80, "/"),
        ("http://0x7f.1/", "127.0.0.1", 80, "/"),
        ("http://0x7f000001/", "127.0.0.1", 80, "/"),
        ("http://0177.0.0.1/", "127.0.0.1", 80, "/"),
        ("http://127.1/", "127.0.0.1", 80, "/"),
        ("http://169.254.169.254/latest", "169.254.169.254", 80, "/latest"),
        ("http://[::1]:9000/", "::1", 9000, "/"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1", 80, "/"),
    ],
)
def test_urls_are_read_with_their_host_as_it_will_be_reached(
    url: str, host: str, port: int, target: str
) -> None:
    parsed = rules.parse_url(url)
    assert (parsed.host, parsed.port, parsed.target) == (host, port, target)


def test_a_numeric_host_is_an_address_the_rule_sees() -> None:
    for url in ("http://2130706433/", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/"):
        ip = rules.parse_url(url).ip
        assert ip is not None and not rules.allowed(ip, allow_private=False)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "Enter a URL"),
        ("ftp://hooks.example/", "https:// or http://"),
        ("javascript:alert(1)", "https:// or http://"),
        ("hooks.example/path", "https:// or http://"),
        ("https://user:pw@hooks.example/", "user name or password"),
        ("https://user@hooks.example/", "user name or password"),
        ("https://hooks.example/#frag", "#fragment"),
        ("https://hooks.example/a b", "no spaces"),
        ("https://hooks.example/\r\nX: y", "no spaces"),
        ("https:///path", "no host"),
        ("https://hooks.example:99999/", "not a valid URL"),
        ("https://hooks_example.com/", "not a valid name"),
        ("http://1.2.3.4.5/", "neither a name nor an IP address"),
        ("http://256.1/", "neither a name nor an IP address"),
        ("http://0x100000000/", "neither a name nor an IP address"),
        ("http://[fe80::1%25eth0]/", "not a valid IPv6 address"),
        ("https://hooks.example/" + "a" * 2048, "at most 2048"),
    ],
)
def test_urls_refused_for_their_form(url: str, says: str) -> None:
    with pytest.raises(rules.InvalidWebhookUrl, match=says):
        rules.parse_url(url)


def test_the_pinned_url_keeps_the_host_for_the_header() -> None:
    parsed = rules.parse_url("https://hooks.example:8443/in?x=1")
    assert (
        parsed.pinned(ipaddress.ip_address("93.184.216.34")) == "https://93.184.216.34:8443/in?x=1"
    )
    assert (
        parsed.pinned(ipaddress.ip_address("2606:4700::1")) == "https://[2606:4700::1]:8443/in?x=1"
    )
    assert parsed.host_header == "hooks.example:8443"
    assert rules.parse_url("https://hooks.example/").host_header == "hooks.example"
    assert rules.parse_url("http://[::1]/").host_header == "[::1]"
