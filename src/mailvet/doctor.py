"""`mailvet doctor`: is our SMTP identity one that real servers accept?

Checks, each printed as one line `ok|warn|fail  <check>: <finding> [— fix: <what to do>]`:

* MAIL FROM: the null reverse-path `<>` is accepted everywhere; an address needs a domain
  that resolves and has MX (an A record alone is a fallback many servers frown on);
* HELO: a fully-qualified name that resolves, and whose address's PTR names it again
  (forward-confirmed reverse DNS, what Postfix's `reject_unknown_helo_hostname` and
  `reject_unknown_client_hostname` and most large providers look at);
* outbound port 25: the probe domain's MX answers a TCP connection with a 220 greeting
  (many cloud and home networks block outbound port 25);
* a warning when connections to private/loopback MX addresses are allowed.

`run` returns 0 when no check failed (warnings are advice), 1 otherwise. Network trouble is
a finding, never a traceback. The configured MAIL FROM is shown by its domain only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
from dataclasses import dataclass
from typing import TextIO

import dns.asyncresolver
import dns.exception
import dns.resolver
import dns.reversename

from mailvet.adapters.dns import DnsResolver, make_resolver
from mailvet.domain.network import is_public_address
from mailvet.domain.ports import RouteKind
from mailvet.settings import Settings

MAX_PROBE_ADDRESSES = 3  # MX addresses of the probe domain tried before giving up


@dataclass(frozen=True, slots=True)
class Finding:
    level: str  # ok | warn | fail
    check: str
    finding: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level:<4}  {self.check}: {self.finding}"
        return f"{text} — fix: {self.fix}" if self.fix else text


def run(settings: Settings, *, probe_domain: str = "gmail.com", out: TextIO | None = None) -> int:
    """Print the report to `out` (default stdout); 0 when nothing needs fixing, else 1."""
    stream = out if out is not None else sys.stdout
    try:
        findings = asyncio.run(check_all(settings, probe_domain))
    except Exception as exc:  # a bug or unforeseen library error: no traceback
        findings = [
            Finding("fail", "doctor", f"could not run the checks ({type(exc).__name__}: {exc})")
        ]
    for finding in findings:
        print(finding.line(), file=stream)
    failed = [f for f in findings if f.level == "fail"]
    print(
        f"{len(failed)} problem(s) to fix" if failed else "nothing to fix",
        file=stream,
    )
    return 1 if failed else 0


async def check_all(settings: Settings, probe_domain: str) -> list[Finding]:
    """Every check, in the order printed."""
    raw = make_resolver(settings.dns)
    resolver = DnsResolver(settings.dns, raw)
    findings = [await check_mail_from(settings, resolver)]
    findings.extend(await check_helo(settings, raw))
    findings.append(await check_port_25(settings, resolver, probe_domain))
    if settings.smtp.allow_private:
        findings.append(
            Finding(
                "warn",
                "allow_private",
                "connections to loopback/private MX addresses are allowed",
                "unset MAILVET_SMTP_ALLOW_PRIVATE outside test worlds",
            )
        )
    return findings


# -- MAIL FROM --------------------------------------------------------------------------


async def check_mail_from(settings: Settings, resolver: DnsResolver) -> Finding:
    name = "MAIL FROM"
    mail_from = settings.smtp.mail_from.strip()
    if mail_from in ("", "<>"):
        return Finding("ok", name, "null reverse-path <>, accepted by every server")
    local, at, domain = mail_from.strip("<>").rpartition("@")
    domain = domain.rstrip(".").lower()
    if not at or not local or "." not in domain:
        return Finding(
            "fail",
            name,
            "the configured sender is not an address with a domain",
            "set MAILVET_MAIL_FROM to an address of a domain you own, or leave it empty for <>",
        )
    route = await resolver.mail_route(domain)
    null = "leave MAILVET_MAIL_FROM empty for the null reverse-path <>"
    if route.kind is RouteKind.MX:
        hosts = ", ".join(route.hosts[:3])
        for host in route.hosts[:MAX_PROBE_ADDRESSES]:
            if await resolver.host_addresses(host):
                return Finding("ok", name, f"domain {domain} has MX {hosts}")
        return Finding(
            "fail",
            name,
            f"domain {domain} has MX {hosts}, but no MX host has an address; "
            "servers that verify senders by calling back cannot reach it",
            f"add A records for the MX hosts of {domain}, or {null}",
        )
    if route.kind is RouteKind.IMPLICIT:
        return Finding(
            "warn",
            name,
            f"domain {domain} has no MX, only an address record (implicit MX)",
            f"publish an MX record for {domain}, or {null}",
        )
    problems = {
        RouteKind.NO_DOMAIN: f"domain {domain} does not exist (NXDOMAIN)",
        RouteKind.NO_MX: f"domain {domain} has neither MX nor address records",
        RouteKind.NULL_MX: f"domain {domain} publishes a Null MX: it accepts no mail",
        RouteKind.TIMEOUT: f"domain {domain}: DNS lookup timed out",
        RouteKind.FAILED: f"domain {domain}: DNS lookup failed (SERVFAIL or refused)",
    }
    if route.kind in (RouteKind.TIMEOUT, RouteKind.FAILED):
        return Finding("fail", name, problems[route.kind], _dns_fix(settings))
    return Finding(
        "fail",
        name,
        problems[route.kind] + "; servers that check senders refuse it",
        f"use a sender address of a domain that has MX, or {null}",
    )


# -- HELO -------------------------------------------------------------------------------


async def check_helo(settings: Settings, raw: dns.asyncresolver.Resolver) -> list[Finding]:
    """The HELO name: a FQDN that resolves, with forward-confirmed reverse DNS."""
    name = "HELO"
    helo = settings.smtp.helo_name.strip().rstrip(".").lower()
    fix_name = "set MAILVET_HELO_NAME to the DNS name of this host's public address"
    add = f"add an A record {helo} -> this host's public address, or {fix_name}"
    if not _is_fqdn(helo):
        return [
            Finding(
                "fail", name, f"{helo or '(empty)'} is not a fully-qualified domain name", fix_name
            )
        ]
    addresses: list[str] = []
    trouble = ""
    for rdtype in ("A", "AAAA"):
        found, error = await _resolve(raw, helo, rdtype)
        addresses.extend(found)
        trouble = trouble or error
    if not addresses:
        if trouble in ("timed out", "failed"):
            return [Finding("fail", name, f"{helo}: DNS lookup {trouble}", _dns_fix(settings))]
        why = "does not exist (NXDOMAIN)" if trouble == "nxdomain" else "has no A/AAAA record"
        return [
            Finding(
                "fail",
                name,
                f"{helo} {why}",
                add,
            )
        ]
    findings = [Finding("ok", name, f"{helo} resolves to {', '.join(addresses[:3])}")]
    for address in addresses[:3]:
        findings.append(await _check_ptr(settings, raw, helo, address))
    return findings


async def _check_ptr(
    settings: Settings, raw: dns.asyncresolver.Resolver, helo: str, address: str
) -> Finding:
    name = "HELO reverse DNS"
    reverse = dns.reversename.from_address(address).to_text(omit_final_dot=True)
    names, error = await _resolve(raw, reverse, "PTR")
    ask = f"ask the owner of {address} (your hosting provider) to set its PTR record to {helo}"
    if error in ("timed out", "failed"):
        return Finding("fail", name, f"PTR lookup of {address} {error}", _dns_fix(settings))
    if not names:
        return Finding("fail", name, f"{address} has no PTR record", ask)
    names = [n.rstrip(".").lower() for n in names]
    if helo in names:
        return Finding("ok", name, f"PTR of {address} is {helo} (forward-confirmed)")
    return Finding(
        "fail",
        name,
        f"PTR of {address} names {', '.join(names[:3])}, not {helo}",
        f"{ask}, or set MAILVET_HELO_NAME to {names[0]} if that name resolves to {address}",
    )


async def _resolve(
    raw: dns.asyncresolver.Resolver, name: str, rdtype: str
) -> tuple[list[str], str]:
    """(records as text, "") or ([], "nxdomain" | "nodata" | "timed out" | "failed")."""
    try:
        answer = await raw.resolve(name, rdtype, search=False)
    except dns.resolver.NXDOMAIN:
        return [], "nxdomain"
    except dns.resolver.NoAnswer:
        return [], "nodata"
    except dns.resolver.LifetimeTimeout:
        return [], "timed out"
    except dns.exception.DNSException:
        return [], "failed"
    return [record.to_text() for record in answer], ""


def _is_fqdn(name: str) -> bool:
    if name in ("", "localhost", "localhost.localdomain") or "." not in name:
        return False
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        return False  # an address literal is not a name
    labels = name.split(".")
    return all(0 < len(label) <= 63 for label in labels) and not labels[-1].isdigit()


def _dns_fix(settings: Settings) -> str:
    servers = ", ".join(settings.dns.servers) or "the system resolver"
    return f"check that the DNS servers ({servers}) answer; set MAILVET_DNS_SERVERS to ones that do"


# -- outbound port 25 -------------------------------------------------------------------


async def check_port_25(settings: Settings, resolver: DnsResolver, probe_domain: str) -> Finding:
    """Connect to the probe domain's MX on the SMTP port and read its greeting."""
    port = settings.smtp.port
    name = f"outbound port {port}"
    domain = probe_domain.strip().rstrip(".").lower()
    route = await resolver.mail_route(domain)
    if route.kind not in (RouteKind.MX, RouteKind.IMPLICIT):
        other = "pass --probe-domain with a domain that receives mail"
        dns_trouble = route.kind in (RouteKind.TIMEOUT, RouteKind.FAILED)
        return Finding(
            "fail",
            name,
            f"cannot find a mail server for {domain} ({route.kind.value})",
            f"{_dns_fix(settings)}, or {other}" if dns_trouble else other,
        )
    targets: list[tuple[str, str]] = []
    skipped_private = False
    for host in route.hosts:
        for address in await resolver.host_addresses(host):
            if not is_public_address(address) and not settings.smtp.allow_private:
                skipped_private = True
                continue
            targets.append((host, address))
        if len(targets) >= MAX_PROBE_ADDRESSES:
            break
    if not targets:
        why = "only private addresses" if skipped_private else "no address"
        return Finding(
            "fail",
            name,
            f"the MX hosts of {domain} have {why}",
            "pass --probe-domain with a public domain that receives mail",
        )
    results: list[tuple[str, str]] = []
    for host, address in targets[:MAX_PROBE_ADDRESSES]:  # the first greeting will do
        level, text = await _greet(host, address, port, settings.smtp.timeout)
        if level == "ok":
            return Finding("ok", name, text)
        results.append((level, text))
    for level, text in results:
        if level == "refused-us":
            return Finding(
                "fail",
                name,
                text,
                "the server turns this host away: check this IP address on blocklists "
                "(e.g. Spamhaus) and its reverse DNS, or probe from another host",
            )
    for level, text in results:
        if level == "silent":
            return Finding(
                "fail",
                name,
                text,
                f"something between this host and the internet may intercept port {port} "
                "(a firewall or proxy): ask your network or cloud provider, or try "
                "--probe-domain with another domain",
            )
    for level, text in results:
        if level == "busy":
            return Finding("warn", name, text, "try again later")
    return Finding(
        "fail",
        name,
        "; ".join(text for _, text in results),
        f"outbound TCP port {port} seems blocked: ask your network or cloud provider to open "
        "it, or run mailvet on a host that may send mail",
    )


# one limit for each step (connect, greeting), each reported on its own
async def _greet(host: str, address: str, port: int, timeout: float) -> tuple[str, str]:  # noqa: ASYNC109
    """("ok" | "refused-us" | "busy" | "silent" | "unreachable", what happened)."""
    where = f"{host} [{address}]:{port}"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except TimeoutError:
        return "unreachable", f"{where}: no connection within {timeout:g} s"
    except OSError as exc:
        why = os.strerror(exc.errno).lower() if exc.errno else type(exc).__name__
        return "unreachable", f"{where}: {why}"
    try:
        greeting = await asyncio.wait_for(_read_reply(reader), timeout)
    except TimeoutError:
        return "silent", f"{where}: connected, but no greeting within {timeout:g} s"
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return "unreachable", f"{where}: connection lost before the greeting ({type(exc).__name__})"
    finally:
        await _close(writer)
    if not greeting:
        return "unreachable", f"{where}: closed without a greeting"
    if greeting.startswith("220"):
        return "ok", f"{where} greets with {greeting[:80]}"
    if greeting.startswith("4"):
        return "busy", f"{where} greets with {greeting[:80]}"
    return "refused-us", f"{where} greets with {greeting[:80]}"


async def _read_reply(reader: asyncio.StreamReader) -> str:
    """The last line of a (multi-line) reply, or "" at end of stream."""
    for _ in range(100):
        raw = await reader.readline()
        if not raw:
            return ""
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if len(line) < 4 or line[3] != "-":
            return line
    return ""


async def _close(writer: asyncio.StreamWriter) -> None:
    try:
        if not writer.is_closing():
            writer.write(b"QUIT\r\n")
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (OSError, TimeoutError):
        pass
