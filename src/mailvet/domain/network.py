"""Which IP addresses an outbound connection may reach: `is_public_address`.

One rule for every connection made on a customer's say-so, so that a name pointing at the
machine itself or at the private network (server-side request forgery) reaches nothing: the
SMTP probes' MX addresses (adapters/smtp.py) and the completion webhooks' hosts
(domain/webhooks.py).

Refused: loopback, private (RFC 1918, fc00::/7), link-local (169.254/16 with the cloud
metadata address, fe80::/10), multicast, unspecified, reserved (240/4, the IPv6 blocks not
allocated), shared (100.64/10), documentation and benchmarking ranges, and every IPv6 form
that carries an IPv4 address — IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d),
6to4 (2002::/16), NAT64 (64:ff9b::/96) and Teredo — unless the IPv4 address inside is public
itself (for the deprecated IPv4-compatible form: never). The standard library's `is_global`
does the ranges; this adds the embedded forms, which it passes as global.
"""

from __future__ import annotations

import ipaddress

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> IpAddress | None:
    """`text` as an IP address (an IPv6 zone `%eth0` dropped, brackets allowed); None when it
    is not one."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _public_v4(ip: ipaddress.IPv4Address) -> bool:
    return ip.is_global and not ip.is_multicast


def is_public_ip(ip: IpAddress) -> bool:
    """A globally routable unicast address (see the module docstring)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _public_v4(ip)
    if ip.ipv4_mapped is not None:
        return _public_v4(ip.ipv4_mapped)
    if ip in _NAT64:
        return _public_v4(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
    if ip in _IPV4_COMPATIBLE:
        return False  # ::, ::1 and the deprecated ::a.b.c.d
    if ip.sixtofour is not None and not _public_v4(ip.sixtofour):
        return False
    if ip.teredo is not None:
        return False  # 2001::/32, not global anyway: said for the reader
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def is_public_address(address: str) -> bool:
    """`address` (text) is an IP address an outbound connection may reach; False for
    anything that is not an IP address."""
    ip = parse_ip(address)
    return ip is not None and is_public_ip(ip)
